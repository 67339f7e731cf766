"""``adalink train``'s command line and ``--config run.yaml``, parsed by jsonargparse; every run's resolved options
written back into its directory as ``config.yaml``.

Why jsonargparse and not transformers' ``HfArgumentParser``: jsonargparse reads a ``--config`` YAML file and the
flags given after it into one result (the later overriding the earlier), checks every value against its field's type
hint (from the file too: ``max_steps: 3.0`` or ``mixed_precision: no`` is refused, ``lr: 1e-3`` is a number) and
loads YAML safely (nothing is constructed or executed). ``HfArgumentParser`` reads a YAML file only on its own
(``parse_yaml_file``: no flags on top) and hands the file's values to the dataclass unchecked, so the precedence and
the type checks would stay hand-written. Neither keeps the flags' spelling from dataclass fields (jsonargparse's
``add_class_arguments`` names them ``--max_steps``; ``HfArgumentParser`` adds ``--max_steps`` beside
``--max-steps``), so each field is still added as one ``--max-steps`` flag (:func:`train_parser`, a short loop over
:func:`adalink.options.option_specs` of :data:`~.args.GROUPS`, one help section per group); jsonargparse's own
messages are turned into adalink's one-line ones (:func:`_refusal`).

A file's keys are the options' names (``max_steps``, not ``--max-steps``), flat, as in every ``config.yaml`` written
before the options were grouped. A value is checked against its field's type: ``int`` an integer (not ``true``, not
``3.0``), ``float`` a number, ``bool`` ``true`` or ``false``, ``str`` a string (YAML reads an unquoted ``no`` or
``on`` as a bool: quote it), ``X | None`` also ``null``. Precedence: a field's default < the file < a flag given on
the command line, wherever ``--config`` stands on it. A file may name another with ``config: base.yaml``: that file is
read at that key and the keys after it override it. Relative paths in a file are read from the current directory, as
on the command line.

``config.yaml`` holds every option of the run (``config`` aside), one section per group, so ``adalink train --config
<run>/config.yaml`` runs it again, to the same adapter bit for bit where the hardware is deterministic (CPU).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .._version import __version__
from ..errors import AdalinkError, MissingFileError, UsageError
from ..io import write_atomic
from ..methods.base import MethodConfig
from ..options import OptionSpec, option_specs
from .args import GROUPS, TrainArgs

if TYPE_CHECKING:
    from jsonargparse import ArgumentParser

__all__ = ["CONFIG_FILE", "parse_train_args", "read_config", "train_parser", "write_config"]

CONFIG_FILE = "config.yaml"
_MODE = "adalink-yaml"  # jsonargparse's YAML loader, with an empty file read as no options
_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_DESCRIPTION = (
    "Train a method on a model and task(s); no options = the MiniLM demo. Options come from their defaults, then "
    "--config's YAML file (keys: the option names with underscores), then the flags given."
)


def _specs() -> dict[str, OptionSpec]:
    return {spec.name: spec for cls, _ in GROUPS.values() for spec in option_specs(cls)}


def train_parser() -> ArgumentParser:
    """jsonargparse's parser of ``adalink train``: one ``--flag`` per option, a help section per group."""
    from jsonargparse import ActionConfigFile, ArgumentParser, get_loader, set_loader

    load = get_loader("yaml")
    set_loader(_MODE, lambda text: load(text) if text.strip() else {}, (yaml.YAMLError,))
    parser = ArgumentParser(
        prog="adalink train", description=_DESCRIPTION, exit_on_error=False, parser_mode=_MODE, allow_abbrev=True
    )
    for cls, title in GROUPS.values():
        group = parser.add_argument_group(title, cls.__doc__)
        for spec in option_specs(cls):
            if spec.name == "config":
                group.add_argument(spec.flag, action=ActionConfigFile, help=spec.help)
            elif spec.kind is bool:  # a switch, or `--resume false`; `resume: true` in a file
                group.add_argument(spec.flag, type=bool, nargs="?", const=True, default=spec.default, help=spec.help)
            else:
                group.add_argument(spec.flag, type=spec.hint, default=spec.default, help=spec.help)
    return parser


def parse_train_args(argv: Sequence[str]) -> TrainArgs:
    """``adalink train``'s options from its command line: the defaults, ``--config``'s file(s), the flags given.

    Raises:
        UsageError: An unknown flag or key (with the closest option), a value of the wrong type (naming the flag, or
            the file and key, what was expected and what was found), a file that is not YAML or not a mapping.
        MissingFileError: ``--config`` names no file.
    """
    import argparse

    ordered, files = _config_first(argv)
    try:
        namespace = train_parser().parse_args(ordered)
    except argparse.ArgumentError as err:
        raise _refusal(str(err), argv, files) from None
    options = {key: namespace[key] for key in _specs() if key != "config"}
    for key, value in options.items():
        spec = _specs()[key]
        if value is None and not spec.optional:  # jsonargparse lets null through to any field
            raise UsageError(f"{', '.join(files)}: {key}: expected {_expected(spec)}, found null.")
    return TrainArgs(**options, config=", ".join(files) or None)


def _config_first(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` with every ``--config FILE`` (or ``--config=FILE``) moved to the front, so that the flags given win
    wherever it stands (jsonargparse applies the arguments in order); and the files."""
    front: list[str] = []
    rest: list[str] = []
    files: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--config":
            file = next(tokens, None)
            front += [token] if file is None else [token, file]
            files += [] if file is None else [file]
        elif token.startswith("--config="):
            front.append(token)
            files.append(token.partition("=")[2])
        else:
            rest.append(token)
    return front + rest, files


def _expected(spec: OptionSpec) -> str:
    return _EXPECTED[spec.kind] + (" or null" if spec.optional else "")


def _refusal(message: str, argv: Sequence[str], files: list[str]) -> AdalinkError:
    """jsonargparse's ``message`` as one line that names the flag (or the file and key), what was expected and what
    was found; an unknown option with the closest one."""
    text, specs, source = " ".join(message.split()), _specs(), ", ".join(files) or "--config"
    if match := re.match(r'Parser key "config": File does not exist: (.*)', text):
        return MissingFileError(f"--config {match.group(1).strip(chr(39))}: no such file.")
    if (match := re.match(r'Parser key "(\w+)": (.*)', text)) and match.group(1) in specs:
        spec, detail = specs[match.group(1)], match.group(2)
        found = re.search(r"(?:Got|Given) value: (.*)$", detail)
        value = found.group(1) if found else detail
        on_line = any(t == spec.flag or t.startswith(spec.flag + "=") for t in argv)
        where = spec.flag if on_line else f"{source}: {spec.name}"
        quote = not on_line and spec.kind is str and value in ("True", "False")
        hint = " (YAML reads an unquoted yes/no/on/off as a bool: quote it)" if quote else ""
        return UsageError(f"{where}: expected {_expected(spec)}, found {value or repr(value)}{hint}.")
    if match := re.match(r"Option '(.+)' is not accepted", text):
        key = match.group(1)
        return UsageError(f"{source}: {key}: not an option of adalink train; {_closest(key.replace('-', '_'))}")
    if match := re.match(r"unrecognized arguments: (\S+)", text):
        flag = match.group(1).partition("=")[0]
        close = difflib.get_close_matches(flag, [s.flag for s in specs.values()], n=1)
        return UsageError(f"{text}" + (f"; did you mean {close[0]}?" if close else "; see adalink train --help."))
    if match := re.match(r"Problems parsing config: (.*)", text):
        return UsageError(f"{source}: not valid YAML: {match.group(1)}")
    if text.startswith("Unexpected config"):
        document = text.partition(":")[2].strip()
        return UsageError(f"{source}: expected a mapping of options (max_steps: 300, ...), found {document!r}.")
    return UsageError(text)


def _closest(key: str) -> str:
    names = [name for name in _specs() if name != "config"]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return f"{hint}the keys are the options' names with underscores: {', '.join(names)}."


def read_config(path: str | Path) -> TrainArgs:
    """The options of a YAML file (the defaults where it sets none), checked as ``--config`` checks them."""
    return parse_train_args(["--config", str(path)])


def write_config(path: str | Path, args: TrainArgs, method_config: MethodConfig | None = None) -> None:
    """Write every option of ``args`` (``config`` aside) as YAML to ``path``, atomically, one commented section per
    group; ``method_config``, the method's config the run resolved from them, follows as comments (not an option)."""
    source = f"{args.run.config} and the command line" if args.run.config else "the command line (or the Python API)"
    text = (
        f"# The options of this run (adalink {__version__}), resolved from {source}.\n"
        "# `adalink train --config config.yaml` runs it again; options given on the command line override these.\n"
    )
    options = args.options()
    for cls, title in GROUPS.values():
        section = {spec.name: options[spec.name] for spec in option_specs(cls) if spec.name != "config"}
        text += f"\n# {title}\n" + yaml.dump(section, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    if method_config is not None:
        resolved = yaml.safe_dump(method_config.to_dict(), sort_keys=True, allow_unicode=True, width=1000)
        text += f"\n# The {type(method_config).__name__} these options resolved to (its defaults where not set):\n"
        text += "".join(f"#   {line}\n" for line in resolved.splitlines())
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


class _Dumper(yaml.SafeDumper):
    """Quotes every string that ``--config``'s loader would not read back as the same string (``1e-3``, ``no``)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    from jsonargparse import get_loader

    try:
        plain = get_loader("yaml")(value) == value
    except yaml.YAMLError:
        plain = False
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if plain else "'")


_Dumper.add_representer(str, _represent_str)
