"""Two CPU processes (``accelerate launch``, gloo) train the same model as one process with the same global batch.

How to launch on CPU with this accelerate (1.x): ``accelerate launch --cpu --num_processes 2`` starts ONE process
(``--cpu`` selects the simple launcher, which spawns several only through ``mpirun --mpirun_hostfile``). What works
without MPI is the torchrun-style launcher of ``--multi_gpu``: the harness creates its ``Accelerator(cpu=True)`` on a
machine without CUDA, so the processes join one gloo group (and refuses to run if the launcher's WORLD_SIZE and the
joined group disagree). The test checks the run really had two ranks (a checkpoint holds one RNG file per process).

Dropout is off everywhere (the tiny BERT's config and ``--dropout 0`` for AdaLink's own): each process draws its own
masks, so with dropout the two setups would legitimately differ.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig

from tiny_models import save_tiny_checkpoint, write_sentiment_csv

RUN_TIMEOUT = 300  # seconds per run
MAX_STEPS = 30

# Gradients are averaged over the processes (DDP all-reduce) instead of computed over the whole batch at once, and
# each process pads its micro-batch to its own longest text, so float32 sums run in a different order. Measured
# max |difference| after 30 steps: 2.2e-7 for AdaLink (lr 2e-2, weights up to ~0.25), 1.2e-7 for full fine-tuning
# (lr 1e-3); the tolerance leaves ~50x headroom. The test also checks that the last 10 steps alone move the weights
# by far more than the tolerance, so the comparison is not vacuous.
ATOL, RTOL = 1e-5, 1e-4


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **extra}


def _run(command: list[str], log: Path, env: dict[str, str]) -> None:
    """Run ``command`` in its own process group so that a timeout also ends the ranks a launcher started."""
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            process.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            pytest.fail(f"{command} took over {RUN_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}")
    assert process.returncode == 0, f"{command} exited {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    root = tmp_path_factory.mktemp("distributed")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    config = AutoConfig.from_pretrained(model)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.save_pretrained(model)
    return {"model": model, "data": write_sentiment_csv(root / "s.csv", 300)}


@pytest.mark.parametrize(
    ("method", "extra", "weights"),
    [
        ("adalink", ["--rank", "4", "--dropout", "0", "--lr", "2e-2"], "adapter_model.safetensors"),
        ("full", ["--lr", "1e-3"], "model/model.safetensors"),
    ],
    ids=["adalink", "full"],
)
def test_two_processes_match_one_with_the_same_global_batch(tiny, tmp_path, method, extra, weights):
    def train_args(output_dir: Path) -> list[str]:
        return [
            *("train", "--model", tiny["model"], "--train-file", tiny["data"], "--method", method, *extra),
            *("--max-steps", str(MAX_STEPS), "--save-every", "10", "--batch-size", "8", "--seed", "3"),
            *("--max-eval", "16", "--output-dir", str(output_dir)),
        ]

    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "adalink", *train_args(one)], tmp_path / "one.log", _env())
    launch = [
        *(sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"),
        *("--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"),
    ]
    _run([*launch, "-m", "adalink", *train_args(two)], tmp_path / "two.log", _env())

    last = f"checkpoints/step-{MAX_STEPS:08d}"
    assert sorted(p.name for p in (two / last).glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"], "not two ranks"
    assert sorted(p.name for p in (one / last).glob("rng-*.pt")) == ["rng-0.pt"]

    state_one, state_two = (json.loads((d / last / "state.json").read_text()) for d in (one, two))
    assert state_one["tokens"] == state_two["tokens"]  # the two halves cover exactly the global batches
    # per-step mean losses (stored rounded to 6 decimals; measured max difference 1e-6, one rounding flip)
    torch.testing.assert_close(
        torch.tensor(state_two["history"]), torch.tensor(state_one["history"]), atol=1e-5, rtol=0
    )

    before = load_file(two / f"checkpoints/step-{MAX_STEPS - 10:08d}/trainable.safetensors")
    after = load_file(two / last / "trainable.safetensors")
    assert max(float((after[n] - before[n]).abs().max()) for n in after) > 100 * ATOL

    tensors_one, tensors_two = load_file(one / weights), load_file(two / weights)
    assert tensors_one.keys() == tensors_two.keys()
    for name in tensors_one:
        torch.testing.assert_close(
            tensors_two[name], tensors_one[name], atol=ATOL, rtol=RTOL, msg=lambda m, n=name: f"{n}: {m}"
        )
