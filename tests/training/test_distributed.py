"""Two CPU processes (``accelerate launch``, gloo) train the same model as one process with the same global batch.

How the processes are launched on CPU: :mod:`launch_support`. The test checks the run really had two ranks (a
checkpoint holds one RNG file per process).

Dropout is off everywhere (the tiny BERT's config and ``--dropout 0`` for AdaLink's own): each process draws its own
masks, so with dropout the two setups would legitimately differ.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from launch_support import (
    assert_same_training,
    launched,
    one_process,
    run_logged,
    tiny_bert_without_dropout,
    train_env,
)
from tiny_models import write_sentiment_csv

MAX_STEPS = 30

# Gradients are averaged over the processes (DDP all-reduce) instead of computed over the whole batch at once, and
# each process pads its micro-batch to its own longest text, so float32 sums run in a different order. Measured
# max |difference| after 30 steps: 2.2e-7 for AdaLink (lr 2e-2, weights up to ~0.25), 1.2e-7 for full fine-tuning
# (lr 1e-3); the tolerance leaves ~50x headroom. The test also checks that the last 10 steps alone move the weights
# by far more than the tolerance, so the comparison is not vacuous.
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    root = tmp_path_factory.mktemp("distributed")
    return {"model": tiny_bert_without_dropout(root / "tiny-bert"), "data": write_sentiment_csv(root / "s.csv", 300)}


@pytest.mark.parametrize(
    ("method", "extra", "weights"),
    [
        ("adalink", ["--rank", "4", "--dropout", "0", "--lr", "2e-2"], "adapter_model.safetensors"),
        ("full", ["--lr", "1e-3"], "adapter_model.safetensors"),
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
    run_logged(one_process(train_args(one)), tmp_path / "one.log", train_env())
    run_logged(launched(train_args(two)), tmp_path / "two.log", train_env())
    assert_same_training(one, two, weights, steps=MAX_STEPS, ranks=2, atol=ATOL, rtol=RTOL)
