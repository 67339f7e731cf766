"""Two CPU processes sharding the model with FSDP2 (``configs/accelerate/fsdp.yaml``, gloo) train what one process
trains with the same global batch, and save the same adapter file (tensors within float32 summation order); with
``--eval-every`` the validation scores are one process's, and a killed sharded run resumes (sharded, or in one process).

torch's FSDP2 (``fully_shard``) runs over gloo on CPU; accelerate (1.x) shards only on accelerators, so the harness
switches its state to FSDP where FSDP was asked for without CUDA (:func:`adalink.training.sharding.enable_fsdp_on_cpu`):
this is accelerate's own FSDP2 path, the one a GPU run takes. Dropout is off everywhere (see test_distributed.py):
the tiny Llama has none, and ``--dropout 0`` for AdaLink's own.

Tolerance: FSDP2 reduce-scatters the gradients (each process sums its half of the batch, then the halves are added)
where one process sums the whole batch at once, so float32 sums run in a different order, as with DDP (measured max
|difference| after 30 steps: 1.5e-7 for AdaLink, 6e-8 for full tuning; bound 1e-5, as for DDP).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from launch_support import assert_same_training, launched, one_process, run_logged, train_env
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MAX_STEPS = 30
ATOL, RTOL = 1e-5, 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    root = tmp_path_factory.mktemp("fsdp")
    # a decoder (text-to-text), like the bases FSDP is for; its config has no dropout. (accelerate 1.15's FSDP2
    # preparation fails on BERT, whose _no_split_modules lists the embeddings block: it shards the table twice.)
    return {
        "model": save_tiny_checkpoint(root / "tiny-llama", "llama"),
        "data": write_sentiment_csv(root / "s.csv", 300),
    }


def _train_args(tiny, method: str, extra: list[str], output_dir: Path) -> list[str]:
    return [
        *("train", "--model", tiny["model"], "--train-file", tiny["data"], "--method", method, *extra),
        *("--max-steps", str(MAX_STEPS), "--save-every", "10", "--batch-size", "8", "--seed", "3"),
        *("--max-eval", "16", "--output-dir", str(output_dir)),
    ]


@pytest.mark.parametrize(
    ("method", "extra", "weights"),
    [
        # with validation every 10 steps: a sharded run scores its weights on an unsharded copy on the main process
        (
            "adalink",
            ["--rank", "4", "--dropout", "0", "--lr", "2e-2", "--eval-every", "10"],
            "adapter_model.safetensors",
        ),
        ("full", ["--lr", "1e-3"], "adapter_model.safetensors"),
    ],
    ids=["adalink", "full"],
)
def test_two_sharded_processes_match_one_and_save_the_same_weights(tiny, tmp_path, method, extra, weights):
    one, sharded = tmp_path / "one", tmp_path / "sharded"
    run_logged(one_process(_train_args(tiny, method, extra, one)), tmp_path / "one.log", train_env())
    log = run_logged(
        launched(_train_args(tiny, method, extra, sharded), config="fsdp"), tmp_path / "sharded.log", train_env()
    )
    assert "Sharded training: FSDP2 over 2 processes." in log  # not a silent fallback to DDP
    assert_same_training(one, sharded, weights, steps=MAX_STEPS, ranks=2, atol=ATOL, rtol=RTOL)
    if method == "adalink":  # the same adapter file: its config and base fingerprint too
        hashes = ("weights_sha256", "config_sha256")  # of the weights file's bytes: equal only to the last bit
        document = {
            d: {k: v for k, v in json.loads((d / "adapter_config.json").read_text()).items() if k not in hashes}
            for d in (one, sharded)
        }
        assert document[sharded] == document[one]
    run = json.loads((sharded / "run.json").read_text())
    assert run["method_config"] == json.loads((one / "run.json").read_text())["method_config"]  # the same config
    if method == "adalink":
        history = {d: json.loads((d / "metrics.json").read_text())["eval_history"] for d in (one, sharded)}
        assert [h["step"] for h in history[sharded]] == [10, 20, 30]
        for ours, theirs in zip(history[sharded], history[one], strict=True):
            assert ours["score"] == pytest.approx(theirs["score"], abs=1e-6)
        _check_resumption(tiny, extra, one, sharded, tmp_path)


def _killed_after(run: Path, copy: Path, step: int) -> Path:
    """A copy of ``run`` as if killed after the checkpoint of ``step`` (the later ones and the outputs never made)."""
    shutil.copytree(run / "checkpoints", copy / "checkpoints")
    for later in (copy / "checkpoints").glob("step-*"):
        if int(later.name.split("-")[1]) > step:
            shutil.rmtree(later)
    (copy / "checkpoints" / "latest").write_text(f"step-{step:08d}\n")
    return copy


def _check_resumption(tiny, extra: list[str], one: Path, sharded: Path, tmp_path: Path) -> None:
    """A sharded checkpoint holds the whole optimiser state by parameter name: a killed sharded run resumes sharded
    (the same weights as never killed, to the last bit of float32), and also resumes in one process."""
    weights = "adapter_model.safetensors"
    again = _killed_after(sharded, tmp_path / "resumed-sharded", 20)
    log = run_logged(
        launched([*_train_args(tiny, "adalink", extra, again), "--resume"], config="fsdp"),
        tmp_path / "resumed-sharded.log",
        train_env(),
    )
    assert "Resuming from" in log and "(step 20)" in log
    saved = torch.load(again / "checkpoints" / "step-00000020" / "optimizer.pt", weights_only=True)["optimizer"]
    assert all(isinstance(name, str) for name in saved["state"])  # whole, by parameter name: not rank 0's shard
    resumed, whole = load_file(again / weights), load_file(sharded / weights)
    assert resumed.keys() == whole.keys()
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-7, rtol=0)
    alone = _killed_after(sharded, tmp_path / "resumed-alone", 20)  # 2 ranks' checkpoint, 1 process: rank 0's RNG
    run_logged(
        one_process([*_train_args(tiny, "adalink", extra, alone), "--resume"]), tmp_path / "alone.log", train_env()
    )
    resumed, reference = load_file(alone / weights), load_file(one / weights)
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], atol=ATOL, rtol=RTOL)


def test_what_a_sharded_run_cannot_do_yet_is_refused_by_name(tiny, tmp_path):
    pytest.importorskip("torchao", reason="--quantize int8 needs torchao: pip install 'adalink[quant]'")
    args = _train_args(tiny, "adalink", ["--quantize", "int8"], tmp_path / "refused")
    with pytest.raises(AssertionError, match="--quantize int8 is not supported with FSDP"):
        run_logged(launched(args, config="fsdp"), tmp_path / "refused.log", train_env())
