"""Options generated from a typed dataclass: one field, one ``--flag`` (its ``help`` from metadata).

:func:`option_specs` describes the fields (name, type, default, help); :func:`add_dataclass_options` turns them into
plain argparse flags (``adalink serve``). ``adalink train`` gives the same descriptions to jsonargparse, which also
reads them from a ``--config`` file (:mod:`adalink.training.config_file`), so the command line and the file cannot
drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

__all__ = ["OptionSpec", "add_dataclass_options", "option_specs"]

_KINDS = (bool, int, float, str)


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

    @property
    def hint(self) -> Any:
        """The field's type as a type hint: ``kind``, or ``kind | None``."""
        return self.kind | None if self.optional else self.kind


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


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field-name`` for every field of the dataclass ``cls``: ``bool`` fields are switches, ``X | None``
    fields take an ``X``, defaults are the fields' own (and shown in the help)."""
    for spec in option_specs(cls):
        if spec.kind is bool:
            parser.add_argument(spec.flag, action="store_true", default=spec.default, help=spec.help)
        else:
            shown = "" if spec.default is None else f" (default: {spec.default})"
            parser.add_argument(spec.flag, type=spec.kind, default=spec.default, help=spec.help + shown)
