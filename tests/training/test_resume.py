"""A training run killed with SIGKILL and resumed with ``--resume`` ends bit-identical to an uninterrupted one.

The runs are real ``python -m adalink train`` subprocesses on a tiny local BERT (dropout on, so the restored RNG
state matters too), with ``--eval-every`` and early stopping: the best step lies before the kill, so its weights,
the scores so far and the patience counter must all come back from the checkpoint. Every subprocess gets
``OMP_NUM_THREADS=1``: the same thread count in every run keeps CPU kernels bit-reproducible, and one thread per run
keeps steps fast on a busy 2-core machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adalink.cli import main
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MAX_STEPS, SAVE_EVERY, EVAL_EVERY, PATIENCE = 400, 50, 25, 6
CHECKPOINT_TIMEOUT = 180  # seconds for the first run to write a mid-run checkpoint (imports included)
RUN_TIMEOUT = 300  # seconds for a whole run


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def _latest_step(output_dir: Path) -> int | None:
    """The step ``checkpoints/latest`` points at (replaced atomically, so never half-written), or None."""
    try:
        name = (output_dir / "checkpoints" / "latest").read_text().strip()
    except FileNotFoundError:
        return None
    return int(name.removeprefix("step-")) if name.startswith("step-") else None


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]


def _assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"not bit-identical: {different}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    return {"model": save_tiny_checkpoint(root / "tiny-bert", "bert"), "data": write_sentiment_csv(root / "s.csv", 300)}


def _train_command(tiny, output_dir: Path) -> list[str]:
    return [
        *(sys.executable, "-m", "adalink", "train", "--model", tiny["model"], "--train-file", tiny["data"]),
        *("--rank", "4", "--lr", "1e-2", "--batch-size", "16", "--seed", "5", "--max-eval", "32"),
        *("--max-steps", str(MAX_STEPS), "--save-every", str(SAVE_EVERY), "--output-dir", str(output_dir)),
        *("--eval-every", str(EVAL_EVERY), "--early-stopping-patience", str(PATIENCE)),
    ]


def _run(command: list[str], log: Path) -> subprocess.CompletedProcess:
    with open(log, "w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=_env(), timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{_tail(log)}"
    return done


def _start_and_kill_mid_run(command: list[str], output_dir: Path, log: Path) -> int:
    """Start ``command``, SIGKILL it once a mid-run checkpoint exists; return the step ``latest`` then names."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=_env())
    try:
        deadline = time.monotonic() + CHECKPOINT_TIMEOUT
        while (_latest_step(output_dir) or 0) < SAVE_EVERY:
            if process.poll() is not None:
                pytest.fail(f"the run exited ({process.returncode}) before its first checkpoint:\n{_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint after {CHECKPOINT_TIMEOUT} s:\n{_tail(log)}")
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, process.returncode
    killed_at = _latest_step(output_dir)
    assert not (output_dir / "metrics.json").exists() and killed_at < MAX_STEPS, (
        f"the kill landed after training had finished (latest checkpoint: step {killed_at} of {MAX_STEPS}); "
        "make the run longer (--max-steps, --batch-size) so that SIGKILL really interrupts it"
    )
    return killed_at


def test_sigkilled_run_resumes_bit_identical_to_an_uninterrupted_one(tiny, tmp_path):
    killed, uninterrupted = tmp_path / "A", tmp_path / "B"
    killed_at = _start_and_kill_mid_run(_train_command(tiny, killed), killed, tmp_path / "A-killed.log")

    _run([*_train_command(tiny, killed), "--resume"], tmp_path / "A-resumed.log")
    resumed_log = (tmp_path / "A-resumed.log").read_text(errors="replace")
    assert "Resuming from" in resumed_log and f"(step {killed_at})" in resumed_log, _tail(tmp_path / "A-resumed.log")
    _run(_train_command(tiny, uninterrupted), tmp_path / "B.log")

    for adapter in ("adapter_model.safetensors", "last/adapter_model.safetensors"):  # the best step's, the last's
        _assert_same_tensors(load_file(killed / adapter), load_file(uninterrupted / adapter))
    metrics_a, metrics_b = (json.loads((d / "metrics.json").read_text()) for d in (killed, uninterrupted))
    for key in ("eval_history", "best_step", "best_validation_score", "stopped_at_step", "score", "per_task"):
        assert metrics_a[key] == metrics_b[key], key
    stopped = metrics_b["stopped_at_step"]
    assert metrics_b["stopped_early"] and killed_at < stopped < MAX_STEPS and metrics_b["best_step"] < killed_at, (
        "expected the best step before the kill and the early stop after it; adjust the settings",
        killed_at,
        metrics_b["best_step"],
        stopped,
    )
    # the bookkeeping carried through the checkpoint matches too: the per-step losses and the token count
    final = f"checkpoints/step-{stopped:08d}/state.json"
    state_a, state_b = (json.loads((d / final).read_text()) for d in (killed, uninterrupted))
    assert state_a["history"] == state_b["history"] and len(state_a["history"]) == stopped
    assert state_a["tokens"] == state_b["tokens"] and state_a["selection"] == state_b["selection"]


def _quick_args(tiny, output_dir: Path, *extra: str) -> list[str]:
    return [
        *("train", "--model", tiny["model"], "--train-file", tiny["data"], "--output-dir", str(output_dir)),
        *("--rank", "4", "--batch-size", "8", "--max-steps", "6", "--save-every", "3", "--max-eval", "8", *extra),
    ]


def test_resume_with_changed_settings_is_refused(tiny, tmp_path, capsys):
    assert main(_quick_args(tiny, tmp_path, "--lr", "1e-2")) == 0
    capsys.readouterr()
    assert main([*_quick_args(tiny, tmp_path, "--lr", "2e-2"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "different settings for ['lr']" in err, err
    # settings outside the resume key (checkpointing, evaluation size) may change
    assert main([*_quick_args(tiny, tmp_path, "--lr", "1e-2"), "--save-every", "2", "--max-eval", "4", "--resume"]) == 0
    assert "Resuming from" in capsys.readouterr().out
    # evaluation during training is part of the key (it decides the saved weights and when the run stops), and so
    # are the settings of that evaluation (how many examples, how long a generated answer)
    assert main([*_quick_args(tiny, tmp_path, "--lr", "1e-2"), "--eval-every", "3", "--resume"]) == 2
    assert "different settings for ['eval_every', 'max_eval', 'max_new_tokens']" in capsys.readouterr().err
    # trackers and the configuration file are not: they describe the run, they do not change it
    resumed = [*_quick_args(tiny, tmp_path, "--lr", "1e-2"), "--report-to", "tensorboard", "--resume"]
    assert main([*resumed, "--config", str(tmp_path / "config.yaml")]) == 0
    assert "Resuming from" in capsys.readouterr().out
    # a setting left out of the key at its default is still named when it changed
    assert main(_quick_args(tiny, tmp_path / "mixed", "--task-mixing", "sqrt")) == 0
    capsys.readouterr()
    assert main([*_quick_args(tiny, tmp_path / "mixed"), "--resume"]) == 2
    assert "different settings for ['task_mixing']" in capsys.readouterr().err


def test_a_checkpoint_without_a_resolved_rate_is_refused_with_the_reason(tiny, tmp_path, capsys):
    """Runs before the resolved rate was recorded saved ``"lr": null``: there is no --lr that matches it."""
    assert main(_quick_args(tiny, tmp_path)) == 0
    capsys.readouterr()
    for state_file in (tmp_path / "checkpoints").glob("step-*/state.json"):
        state = json.loads(state_file.read_text())
        state["args"]["lr"] = None
        del state["state_sha256"]  # as checkpoints written before the checksums (and the resolved rate) were
        state_file.write_text(json.dumps(state))
    assert main([*_quick_args(tiny, tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "made before runs recorded the learning rate they resolved (its lr is null" in err, err
    assert "start the run again" in err


def test_resume_without_a_checkpoint_starts_from_scratch(tiny, tmp_path, capsys):
    assert main([*_quick_args(tiny, tmp_path / "resumed"), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "no checkpoint in" in out and "starting from step 0" in out and "Resuming from" not in out, out
    assert main(_quick_args(tiny, tmp_path / "fresh")) == 0
    _assert_same_tensors(
        load_file(tmp_path / "resumed" / "adapter_model.safetensors"),
        load_file(tmp_path / "fresh" / "adapter_model.safetensors"),
    )
