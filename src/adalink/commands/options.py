"""Command-line options generated from a typed dataclass: one field, one ``--flag`` (its ``help`` from metadata)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing

__all__ = ["add_dataclass_options"]


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``--field-name`` for every field of the dataclass ``cls``: ``bool`` fields are switches, ``X | None``
    fields take an ``X``, defaults are the fields' own (and shown in the help)."""
    hints = typing.get_type_hints(cls)
    for spec in dataclasses.fields(cls):
        flag = "--" + spec.name.replace("_", "-")
        kind = hints[spec.name]
        if isinstance(kind, types.UnionType):  # X | None
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        help_text = spec.metadata.get("help", "")
        if kind is bool:
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            default = "" if spec.default is None else f" (default: {spec.default})"
            parser.add_argument(flag, type=kind, default=spec.default, help=help_text + default)
