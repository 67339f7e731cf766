"""Options generated from a typed dataclass: one field, one flag, with its type, default and help."""

import argparse
from dataclasses import dataclass, field

from adalink.commands.options import add_dataclass_options


@dataclass
class _Settings:
    steps: int = field(default=3, metadata={"help": "how many"})
    rate: float | None = field(default=None, metadata={"help": "how fast"})
    name: str = "x"
    verbose: bool = field(default=False, metadata={"help": "say more"})


def test_each_field_becomes_a_typed_flag_with_its_default():
    parser = argparse.ArgumentParser()
    add_dataclass_options(parser, _Settings)
    assert vars(parser.parse_args([])) == {"steps": 3, "rate": None, "name": "x", "verbose": False}
    parsed = parser.parse_args(["--steps", "7", "--rate", "0.5", "--name", "y", "--verbose"])
    assert vars(parsed) == {"steps": 7, "rate": 0.5, "name": "y", "verbose": True}
    assert _Settings(**vars(parsed)) == _Settings(7, 0.5, "y", True)
    help_text = " ".join(parser.format_help().split())
    assert "how many (default: 3)" in help_text and "how fast" in help_text and "(default: None)" not in help_text
