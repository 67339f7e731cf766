"""A working set-up prints no third-party noise: each command, in a fresh process (so the packages that log it are
imported there), writes nothing to stderr but its own progress bars (off here) and errors; ``--verbose`` shows it."""

from __future__ import annotations

import json
import subprocess

import pytest

from adalink.logs import KNOWN_NOISE
from launch_support import one_process, train_env
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


def _run(*args: str) -> subprocess.CompletedProcess:
    env = train_env(TQDM_DISABLE="1", HF_HUB_OFFLINE="1")
    return subprocess.run(one_process(list(args)), capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    data = write_sentiment_csv(root / "sentiment.csv", rows=40)
    done = _run(
        *("train", "--model", model, "--train-file", data, "--method", "lora", "--max-steps", "2"),
        *("--batch-size", "4", "--max-length", "16", "--max-eval", "4", "--output-dir", str(root / "run")),
    )
    return root / "run", done


def test_train_writes_nothing_to_stderr(run_dir):
    _, done = run_dir
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "accuracy on test" in done.stdout


def test_eval_predict_merge_and_export_write_nothing_to_stderr(run_dir, tmp_path):
    directory, _ = run_dir
    (tmp_path / "in.txt").write_text("good great\nbad awful\n")
    commands = [
        ("eval", "--adapter", str(directory), "--max-eval", "4"),
        ("predict", "--adapter", str(directory), "--input", str(tmp_path / "in.txt")),
        ("merge", "--adapter", str(directory), "--out", str(tmp_path / "merged")),
        ("export", "--adapter", str(directory), "--out", str(tmp_path / "exported")),
    ]
    for command in commands:
        done = _run(*command)
        assert done.returncode == 0 and done.stderr == "", (command, done.stderr)
    assert (tmp_path / "exported" / "sentiment" / "adapter_config.json").is_file()  # one peft directory per task
    assert [json.loads(line)["text"] for line in _run(*commands[1]).stdout.splitlines()] == ["good great", "bad awful"]


def test_verbose_shows_what_is_otherwise_left_out(run_dir):
    directory, _ = run_dir
    done = _run("--verbose", "eval", "--adapter", str(directory), "--max-eval", "4")
    assert done.returncode == 0 and "LOAD REPORT" in done.stderr  # the new head, which adalink then loads
    quiet = _run("eval", "--adapter", str(directory), "--max-eval", "4")
    assert not [text for _, text in KNOWN_NOISE if text in quiet.stderr]
