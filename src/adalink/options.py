"""Options generated from a typed dataclass: one field, one ``--flag`` (its ``help`` from metadata).

The same description of the fields (:func:`option_specs`) also defines the keys of a configuration file
(:mod:`adalink.training.config_file`), so the command line and the file cannot drift apart. The parser notes which
flags were really given (:func:`given_options`), so that a flag given on the command line can override a file even
when its value equals the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["OptionSpec", "add_dataclass_options", "given_options", "option_specs"]

_KINDS = (bool, int, float, str)
_GIVEN = "given_options"  # the namespace attribute: names of the fields given on the command line


@dataclass(frozen=True)
class OptionSpec:
    """One field of an options dataclass, as the command line and configuration files see it."""

    name: str  # the field's name: the key in a configuration file
    kind: type  # bool, int, float or str
    optional: bool  # the field also takes None (typed ``X | None``)
    default: Any  # the field's default
    help: str  # the flag's help text (the field's ``metadata["help"]``)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def option_specs(cls: type) -> list[OptionSpec]:
    """The fields of the dataclass ``cls`` in order, each typed ``bool``, ``int``, ``float``, ``str`` or ``X | None``.

    Raises:
        TypeError: A field has another type (the command line could not parse it).
    """
    hints = typing.get_type_hints(cls)
    specs = []
    for spec in dataclasses.fields(cls):
        kind, optional = hints[spec.name], False
        if isinstance(kind, types.UnionType):  # X | None
            args = typing.get_args(kind)
            optional = type(None) in args
            kind = next(k for k in args if k is not type(None))
        if kind not in _KINDS:
            raise TypeError(f"{cls.__name__}.{spec.name}: type {hints[spec.name]} is not one of {_KINDS} (or | None).")
        default = spec.default_factory() if spec.default is dataclasses.MISSING else spec.default  # type: ignore[misc]
        specs.append(OptionSpec(spec.name, kind, optional, default, spec.metadata.get("help", "")))
    return specs


class _Given(argparse.Action):
    """Store the value (a switch: ``const``) and note the field as given on the command line."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        given: set[str] = getattr(namespace, _GIVEN, set())
        setattr(namespace, _GIVEN, given | {self.dest})


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field-name`` for every field of the dataclass ``cls``: ``bool`` fields are switches, ``X | None``
    fields take an ``X``, defaults are the fields' own (and shown in the help)."""
    for spec in option_specs(cls):
        if spec.kind is bool:
            parser.add_argument(spec.flag, action=_Given, nargs=0, const=True, default=spec.default, help=spec.help)
        else:
            shown = "" if spec.default is None else f" (default: {spec.default})"
            parser.add_argument(spec.flag, action=_Given, type=spec.kind, default=spec.default, help=spec.help + shown)


def given_options(namespace: argparse.Namespace) -> set[str]:
    """Names of the fields whose flags were given on the command line (not merely left at their defaults)."""
    return set(getattr(namespace, _GIVEN, set()))
