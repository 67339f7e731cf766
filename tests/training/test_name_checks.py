"""``adalink train``'s first look (:mod:`adalink.training.name_checks`): a mistyped ``--method`` or ``--task`` is
refused with a suggestion before torch, transformers or the harness import, with the message the later checks give."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from adalink.errors import ConfigError, UsageError
from adalink.methods import METHOD_CONFIGS
from adalink.training.methods import method_class
from adalink.training.name_checks import check_names, method_names_in_source


def test_the_names_read_from_source_are_the_registered_methods():
    shipped = {name for name, cls in METHOD_CONFIGS.items() if cls.__module__.startswith("adalink.methods.")}
    assert method_names_in_source() == shipped and len(shipped) >= 18


@pytest.mark.parametrize(
    ("argv", "error", "message"),
    [
        (["--method", "loraa"], ConfigError, r"--method 'loraa' is unknown: expected one of adalink, .* Did you mean"),
        (["--method=loraa"], ConfigError, "Did you mean 'lora' or 'lora_all' or 'dora'"),
        (["--task", "tweetz"], UsageError, r"--task 'tweetz' is invalid: .* Did you mean 'tweets' or 'tweets3'\?"),
        (["--max-steps", "3", "--task", "tweets,bbcc"], UsageError, "found 'bbcc', not one of them. Did you mean"),
    ],
)
def test_a_mistyped_name_is_refused_with_a_suggestion(argv, error, message):
    with pytest.raises(error, match=message):
        check_names(argv)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--method", "prompt_tuning", "--task", "headlines,tweets"],
        ["--task", "anything", "--train-file", "mine.csv"],  # --task is not read with --train-file
        ["--task", "anything", "--config", "run.yaml"],  # the file may set --train-file: left to the full parser
        ["--meth", "loraa"],  # an abbreviation: left to the full parser, which refuses it with every other option
        ["--method-config", '{"rank": 2}', "--help"],
        ["--task"],  # no value: the full parser says so
    ],
)
def test_what_it_cannot_judge_is_left_to_the_full_parser(argv):
    check_names(argv)


def test_the_refusal_is_the_one_the_registry_gives():
    with pytest.raises(ConfigError) as early:
        check_names(["--method", "ia4"])
    with pytest.raises(ConfigError) as late:
        method_class("ia4")
    assert str(early.value) == str(late.value)


def test_a_method_registered_in_this_process_is_known(monkeypatch):
    monkeypatch.setitem(METHOD_CONFIGS, "toy_method", METHOD_CONFIGS["lora"])
    check_names(["--method", "toy_method"])


@pytest.mark.parametrize("argv", [["--method", "loraa"], ["--task", "tweetz"]])
def test_the_cli_refuses_a_mistyped_name_without_importing_torch(argv):
    """In a fresh interpreter: ``adalink train`` with a mistyped name exits 2 with its one-line error, and neither
    torch nor transformers was imported (``import adalink`` imports the public names on first use)."""
    code = (
        "import sys\nfrom adalink.cli import main\ncode = main(sys.argv[1:])\n"
        "print(code, sorted(m for m in ('torch', 'transformers', 'jsonargparse') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code, "train", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "2 []", (done.stdout, done.stderr)
    assert done.stderr.startswith("adalink train: error: --") and "Did you mean" in done.stderr
