"""SIGKILL `adalink train` at many moments of one run (random ones, and ones aimed at a checkpoint being written and
at the final save): after every kill the run directory holds a loadable last good state, and `--resume` runs on to
the same adapter, bit for bit, as an uninterrupted run. The runs score the validation split every 10 steps
(``--eval-every``), so the best weights and scores so far go through every checkpoint too, and the final save writes
both the best adapter and ``last/``.

The runs checkpoint every step (``--save-every 1``), so most of their time is spent writing checkpoints and a kill
at a random time often lands inside one. Nothing in the product code helps the test: it only watches the directory.
Subprocesses get ``OMP_NUM_THREADS=1`` and the in-process reference run one torch thread, so CPU kernels agree.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adalink.cli import main
from adalink.io import read_adapter
from adalink.training.checkpoints import latest_checkpoint, read_best, read_checkpoint
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MAX_STEPS, EVAL_EVERY = 60, 10
START_TIMEOUT = 240  # seconds for a process to get going (imports on a busy machine)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("kill")
    return {"model": save_tiny_checkpoint(root / "tiny-bert", "bert"), "data": write_sentiment_csv(root / "s.csv", 200)}


def _args(tiny, out: Path) -> list[str]:
    return [
        *("train", "--model", tiny["model"], "--train-file", tiny["data"], "--output-dir", str(out)),
        *("--rank", "4", "--lr", "1e-2", "--batch-size", "8", "--seed", "7", "--max-eval", "16"),
        *("--max-steps", str(MAX_STEPS), "--save-every", "1", "--keep-checkpoints", "2"),
        *("--eval-every", str(EVAL_EVERY)),
    ]


def _latest_step(out: Path) -> int:
    try:
        return int((out / "checkpoints" / "latest").read_text().removeprefix("step-"))
    except (FileNotFoundError, ValueError):
        return 0


def _writing_checkpoint(out: Path) -> bool:
    root = out / "checkpoints"
    return root.is_dir() and any(p.name.startswith(".step-") for p in os.scandir(root))


def _saving_outputs(out: Path) -> bool:
    """The final save is under way: the best adapter is being written into the run directory (after last/)."""
    return _latest_step(out) == MAX_STEPS and any(p.name.startswith(".adapter_") for p in os.scandir(out))


def _kill_when(tiny, out: Path, log: Path, ready: Callable[[], bool]) -> str:
    """Run `adalink train --resume` until ``ready()`` holds, then SIGKILL it; returns what happened."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "a") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "adalink", *_args(tiny, out), "--resume"], stdout=handle, stderr=handle, env=env
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not ready():
            if process.poll() is not None:
                assert process.returncode == 0, log.read_text()[-3000:]
                return "finished first"
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        return "killed" if process.returncode == -signal.SIGKILL else f"exited {process.returncode}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _assert_last_good_state(out: Path) -> int:
    """The directory's state after a kill: the checkpoint `latest` names reads back whole and verified (every file's
    SHA-256), and finished outputs load; returns the step it holds (0: none yet)."""
    checkpoint = latest_checkpoint(out / "checkpoints")  # CheckpointError if `latest` names a missing one
    step = 0
    if checkpoint is not None:
        tensors, _, scheduler, state = read_checkpoint(checkpoint)  # CheckpointError if any file is damaged
        step = state["step"]
        assert checkpoint.name == f"step-{step:08d}" and 1 <= step <= MAX_STEPS and len(state["history"]) == step
        assert scheduler["last_epoch"] == step and tensors
        evaluated = [h["step"] for h in state["selection"]["history"]]
        assert evaluated == list(range(EVAL_EVERY, step + 1, EVAL_EVERY))
        assert (read_best(checkpoint) is not None) == (step >= EVAL_EVERY)  # verified against its checksum
    if (out / "metrics.json").exists():  # written last: everything before it is complete
        read_adapter(out)
        read_adapter(out / "last")
        json.loads((out / "run.json").read_text())
    return step


@pytest.mark.slow
def test_kills_at_any_moment_leave_a_loadable_state_and_resume_to_the_same_adapter(tiny, tmp_path):
    rng = random.Random(int(os.environ.get("ADALINK_KILL_SEED", "0")) or None)
    out, log = tmp_path / "killed", tmp_path / "killed.log"
    started = time.monotonic()

    def after(delay: float) -> Callable[[], Callable[[], bool]]:
        """`delay` seconds after the new process's first checkpoint (so that the kill lands in training)."""

        def make() -> Callable[[], bool]:
            first = {"step": _latest_step(out), "at": None}

            def ready() -> bool:
                if first["at"] is None and _latest_step(out) > first["step"]:
                    first["at"] = time.monotonic()
                return first["at"] is not None and time.monotonic() - first["at"] >= delay

            return ready

        return make

    def writing() -> Callable[[], bool]:  # the new process's first checkpoint directory that is being filled
        started = _latest_step(out)
        return lambda: _writing_checkpoint(out) and _latest_step(out) >= started

    plan = [
        ("at random", after(rng.uniform(0.0, 0.5))),
        ("while a checkpoint is written", writing),
        ("at random", after(rng.uniform(0.0, 0.5))),
        ("while a checkpoint is written", writing),
        ("while the outputs are saved", lambda: lambda: _saving_outputs(out)),
    ]
    steps, outcomes = [], []
    for moment, make in plan:
        outcomes.append((moment, _kill_when(tiny, out, log, make())))
        steps.append(_assert_last_good_state(out))
    assert steps == sorted(steps), steps  # progress is never lost
    assert sum(outcome == "killed" for _, outcome in outcomes) >= 4, outcomes

    whole = tmp_path / "whole"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses' OMP_NUM_THREADS=1
    try:
        assert main([*_args(tiny, out), "--resume"]) == 0  # the rest of the run
        assert main(_args(tiny, whole)) == 0  # the reference: never interrupted
    finally:
        torch.set_num_threads(threads)
    assert _assert_last_good_state(out) == MAX_STEPS
    for adapter in ("adapter_model.safetensors", "last/adapter_model.safetensors"):
        a, b = load_file(out / adapter), load_file(whole / adapter)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), f"{adapter}: not bit-identical"
    final_state = f"checkpoints/step-{MAX_STEPS:08d}/state.json"
    states = [json.loads((d / final_state).read_text()) for d in (out, whole)]
    assert states[0]["history"] == states[1]["history"] and states[0]["selection"] == states[1]["selection"]
    print(f"kills: {outcomes}; steps after each: {steps}; {time.monotonic() - started:.0f} s")
