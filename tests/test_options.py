"""Options generated from a typed dataclass: one field, one flag, with its type, default and help."""

import argparse
from dataclasses import dataclass, field

import pytest

from adalink.options import OptionSpec, add_dataclass_options, option_specs


@dataclass
class _Settings:
    steps: int = field(default=3, metadata={"help": "how many"})
    rate: float | None = field(default=None, metadata={"help": "how fast"})
    name: str = "x"
    verbose: bool = field(default=False, metadata={"help": "say more"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, _Settings)
    return parser


def test_each_field_becomes_a_typed_flag_with_its_default():
    parser = _parser()
    assert vars(parser.parse_args([])) == {"steps": 3, "rate": None, "name": "x", "verbose": False}
    parsed = parser.parse_args(["--steps", "7", "--rate", "0.5", "--name", "y", "--verbose"])
    values = {k: v for k, v in vars(parsed).items() if k in {"steps", "rate", "name", "verbose"}}
    assert values == {"steps": 7, "rate": 0.5, "name": "y", "verbose": True}
    assert _Settings(**values) == _Settings(7, 0.5, "y", True)
    help_text = " ".join(parser.format_help().split())
    assert "how many (default: 3)" in help_text and "how fast" in help_text and "(default: None)" not in help_text


def test_option_specs_describe_the_fields_for_files_too():
    specs = {s.name: s for s in option_specs(_Settings)}
    assert specs["rate"] == OptionSpec("rate", float, True, None, "how fast")
    assert specs["steps"].flag == "--steps" and not specs["steps"].optional and specs["verbose"].kind is bool
    assert specs["rate"].hint == (float | None) and specs["steps"].hint is int

    @dataclass
    class _Listed:
        items: list[int] = field(default_factory=list)

    with pytest.raises(TypeError, match=r"_Listed.items: type list\[int\] is not one of"):
        option_specs(_Listed)
