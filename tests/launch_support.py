"""For the multi-process tests: ``adalink train`` run as one process, or as several through ``accelerate launch``.

How to launch on CPU with this accelerate (1.x): ``accelerate launch --cpu --num_processes 2`` starts ONE process
(``--cpu`` selects the simple launcher, which spawns several only through ``mpirun --mpirun_hostfile``). What works
without MPI is the torchrun-style launcher of ``--multi_gpu`` (or a config file with ``distributed_type: MULTI_GPU`` or
``FSDP``): the harness creates its ``Accelerator(cpu=True)`` on a machine without CUDA, so the processes join one gloo
group (and it refuses to run if the launcher's WORLD_SIZE and the joined group disagree).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

RUN_TIMEOUT = 600  # seconds per run
ROOT = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = ROOT / "configs" / "accelerate"


def train_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def one_process(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "adalink", *args]


def launched(args: list[str], *, processes: int = 2, config: str | None = None) -> list[str]:
    """``accelerate launch`` of ``adalink`` on ``processes`` processes: with ``configs/accelerate/<config>.yaml``, or
    with plain DDP flags."""
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes)]
    if config:
        launch += ["--config_file", str(ACCELERATE_CONFIGS / f"{config}.yaml")]
    else:
        launch += ["--multi_gpu", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    return [*launch, "--main_process_port", "0", "-m", "adalink", *args]


def run_logged(command: list[str], log: Path, env: dict[str, str]) -> str:
    """Run ``command`` in its own process group (a timeout also ends the ranks a launcher started); its output."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            pytest.fail(f"{command} took over {RUN_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}")
    output = log.read_text(errors="replace")
    assert process.returncode == 0, f"{command} exited {process.returncode}:\n{output[-3000:]}"
    return output


def tiny_bert_without_dropout(directory: Path) -> str:
    """A tiny BERT checkpoint whose config has dropout off: every process would draw its own masks."""
    from transformers import AutoConfig

    from tiny_models import save_tiny_checkpoint

    model = save_tiny_checkpoint(directory, "bert")
    config = AutoConfig.from_pretrained(model)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model)
    return model


def assert_same_training(one: Path, many: Path, weights: str, *, steps: int, ranks: int, atol: float, rtol: float):
    """Run directories ``one`` (one process) and ``many`` (``ranks`` processes) trained the same weights.

    Checks the checkpoint of the last step holds one RNG file per process (the run really had ``ranks`` ranks), the
    same token count and per-step losses, that the last 10 steps moved the weights by far more than ``atol`` (so the
    comparison is not vacuous), and the saved ``weights`` file: the same tensors within (atol, rtol).
    """
    import json

    import torch
    from safetensors.torch import load_file

    last = f"checkpoints/step-{steps:08d}"
    assert sorted(p.name for p in (many / last).glob("rng-*.pt")) == [f"rng-{r}.pt" for r in range(ranks)]
    assert sorted(p.name for p in (one / last).glob("rng-*.pt")) == ["rng-0.pt"]

    state_one, state_many = (json.loads((d / last / "state.json").read_text()) for d in (one, many))
    assert state_one["tokens"] == state_many["tokens"]  # the shares cover exactly the global batches
    # per-step mean losses (stored rounded to 6 decimals; measured max difference 1e-6, one rounding flip)
    torch.testing.assert_close(
        torch.tensor(state_many["history"]), torch.tensor(state_one["history"]), atol=1e-5, rtol=0
    )

    before = load_file(many / f"checkpoints/step-{steps - 10:08d}/trainable.safetensors")
    after = load_file(many / last / "trainable.safetensors")
    assert max(float((after[n] - before[n]).abs().max()) for n in after) > 100 * atol

    tensors_one, tensors_many = load_file(one / weights), load_file(many / weights)
    assert tensors_one.keys() == tensors_many.keys()
    for name in tensors_one:
        assert tensors_many[name].dtype == tensors_one[name].dtype, name
        torch.testing.assert_close(
            tensors_many[name], tensors_one[name], atol=atol, rtol=rtol, msg=lambda m, n=name: f"{n}: {m}"
        )
