"""``adalink train --config run.yaml``: the options of :class:`~adalink.training.args.TrainArgs` from a YAML file,
and every run's resolved options written back into its directory as ``config.yaml``.

A key is a field's name (``max_steps``, not ``--max-steps``). The schema is :func:`adalink.options.
option_specs`, the one that generates the flags, so a file has exactly the flags' options (except ``config``: a
file does not name another one). The file is read with ``yaml.safe_load`` (plain data: nothing is constructed or
executed) and each value is checked against its field's type:

* ``int``: an integer (not ``true``, not ``3.0``);
* ``float``: a number, or a string that is one (YAML 1.1 reads ``1e-3``, without a dot, as a string);
* ``bool``: ``true`` or ``false``;
* ``str``: a string (YAML reads an unquoted ``no`` or ``on`` as a bool: quote it);
* ``X | None``: also ``null`` (or an empty value).

Precedence: a field's default < the file < a flag given on the command line (given, even at its default value).
Relative paths in a file are read from the current directory, as on the command line.
``config.yaml`` holds every option of the run (``config`` aside), so ``adalink train --config <run>/config.yaml``
runs it again, to the same adapter bit for bit where the hardware is deterministic (CPU).
"""

from __future__ import annotations

import argparse
import difflib
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from .._version import __version__
from ..errors import MissingFileError, UsageError
from ..io import write_atomic
from ..methods.base import MethodConfig
from ..options import OptionSpec, given_options, option_specs
from .args import TrainArgs

__all__ = ["CONFIG_FILE", "read_config", "resolve_args", "write_config"]

CONFIG_FILE = "config.yaml"
_NOT_IN_FILES = {"config"}
_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def read_config(path: str | Path) -> dict[str, Any]:
    """The options a YAML file sets, checked and converted to their fields' types.

    Raises:
        FileNotFoundError: There is no such file.
        ValueError: The file is not YAML, not a mapping, or has an unknown key or a value of the wrong type; the
            message names the file, the key, the value and what was expected.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"--config {path}: no such file.")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not valid YAML: {err}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise UsageError(f"{path}: expected a mapping of options (max_steps: 300, ...), found {_shown(document)}.")
    specs = {s.name: s for s in option_specs(TrainArgs) if s.name not in _NOT_IN_FILES}
    return {str(key): _checked(path, specs, key, value) for key, value in document.items()}


def _checked(path: Path, specs: dict[str, OptionSpec], key: Any, value: Any) -> Any:
    """``value`` as the type of option ``key``, or a ValueError that names the file, the key and the value."""
    spec = specs.get(key) if isinstance(key, str) else None
    if spec is None:
        close = difflib.get_close_matches(str(key).replace("-", "_"), list(specs), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(
            f"{path}: {key}: not an option of adalink train; {hint}the keys are the options' names with underscores: "
            f"{', '.join(specs)}."
        )
    if value is None and spec.optional:
        return None
    if type(value) is spec.kind:  # bool is not an int here, nor an int a bool
        return value
    if spec.kind is float and (type(value) is int or (isinstance(value, str) and _NUMBER.fullmatch(value.strip()))):
        return float(value)
    expected = _EXPECTED[spec.kind] + (" or null" if spec.optional else "")
    quote = spec.kind is str and type(value) is bool
    hint = " (YAML reads an unquoted yes/no/on/off as a bool: quote it)" if quote else ""
    raise UsageError(f"{path}: {key}: expected {expected}, found {_shown(value)}{hint}")


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def resolve_args(namespace: argparse.Namespace) -> TrainArgs:
    """``adalink train``'s options: the fields' defaults, then ``--config``'s file, then the flags really given."""
    given = given_options(namespace)
    options = read_config(namespace.config) if namespace.config else {}
    options.update({name: getattr(namespace, name) for name in given})
    return TrainArgs(**options)


def write_config(path: str | Path, args: TrainArgs, method_config: MethodConfig | None = None) -> None:
    """Write every option of ``args`` (``config`` aside) as YAML to ``path``, atomically; ``method_config``, the
    method's config the run resolved from them, follows as comments (it is not an option)."""
    options = {k: v for k, v in asdict(args).items() if k not in _NOT_IN_FILES}
    source = f"{args.config} and the command line" if args.config else "the command line (or the Python API)"
    header = (
        f"# The options of this run (adalink {__version__}), resolved from {source}.\n"
        "# `adalink train --config config.yaml` runs it again; options given on the command line override these.\n"
    )
    text = header + yaml.safe_dump(options, sort_keys=False, allow_unicode=True, width=1000)
    if method_config is not None:
        resolved = yaml.safe_dump(method_config.to_dict(), sort_keys=True, allow_unicode=True, width=1000)
        text += f"# The {type(method_config).__name__} these options resolved to (its defaults where not set):\n"
        text += "".join(f"#   {line}\n" for line in resolved.splitlines())
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
