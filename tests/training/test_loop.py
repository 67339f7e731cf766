"""``train``'s refusals before any step, and evaluation during training (``--eval-every``): it leaves the training
itself untouched, the run directory holds the best weights (``last/`` the last ones), early stopping ends the run.

The loop itself runs end to end in tests/test_cli.py (train, resume after a kill in test_resume.py, two processes in
test_distributed.py, divergence in test_cli.py)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from adalink.cli import main
from adalink.runs.reading import load_run
from adalink.training.args import TrainArgs
from adalink.training.checkpoints import read_best, read_checkpoint
from adalink.training.loop import train
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MAX_STEPS, EVERY = 24, 4


def test_a_batch_that_does_not_split_evenly_is_refused(tmp_path):
    args = TrainArgs(batch_size=6, grad_accum=4, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"--batch-size 6 must split evenly over 1 process\(es\) x --grad-accum 4"):
        train(args)


def test_invalid_arguments_are_refused_before_anything_is_loaded(tmp_path):
    with pytest.raises(ValueError, match="--max-steps 0 is invalid"):
        train(TrainArgs(max_steps=0, output_dir=str(tmp_path)))
    with pytest.raises(ValueError, match="--early-stopping-patience counts evaluations: it needs --eval-every N"):
        train(TrainArgs(early_stopping_patience=2, output_dir=str(tmp_path)))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same run (dropout on) with and without ``--eval-every``, every checkpoint kept."""
    root = tmp_path_factory.mktemp("loop")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    data = write_sentiment_csv(root / "s.csv", 200)
    base = [
        *("train", "--model", model, "--train-file", data, "--rank", "4", "--lr", "2e-2", "--batch-size", "8"),
        *("--seed", "2", "--max-steps", str(MAX_STEPS), "--save-every", str(EVERY), "--keep-checkpoints", "100"),
        *("--max-eval", "16"),
    ]
    assert main([*base, "--output-dir", str(root / "plain")]) == 0
    assert main([*base, "--output-dir", str(root / "eval"), "--eval-every", str(EVERY)]) == 0
    return {"root": root, "base": base}


def _final_state(out) -> dict:
    return read_checkpoint(out / "checkpoints" / f"step-{MAX_STEPS:08d}")[3]


def test_evaluation_leaves_the_training_untouched(runs):
    plain, evaluated = runs["root"] / "plain", runs["root"] / "eval"
    assert _final_state(plain)["history"] == _final_state(evaluated)["history"]  # same dropout masks, same losses
    a, b = load_file(plain / "adapter_model.safetensors"), load_file(evaluated / "last" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not (plain / "last").exists() and "eval_history" not in json.loads((plain / "metrics.json").read_text())


def test_the_run_directory_holds_the_best_weights_and_last_the_last_ones(runs, capsys):
    out = runs["root"] / "eval"
    metrics = json.loads((out / "metrics.json").read_text())
    history = metrics["eval_history"]
    assert [h["step"] for h in history] == list(range(EVERY, MAX_STEPS + 1, EVERY))
    best = max(history, key=lambda h: h["score"])  # the first of the best
    assert (metrics["best_step"], metrics["best_validation_score"]) == (best["step"], best["score"])
    assert EVERY < best["step"] < MAX_STEPS, history  # seed 2: the score rises, then falls (else pick another seed)
    assert not metrics["stopped_early"] and metrics["steps"] == MAX_STEPS and metrics["last_adapter"] == "last"
    # the weights saved are the ones of the best step's checkpoint, and the test score is theirs
    at_best = read_checkpoint(out / "checkpoints" / f"step-{best['step']:08d}")[0]
    kept = read_best(out / "checkpoints" / f"step-{MAX_STEPS:08d}")
    assert at_best.keys() == kept.keys() and all(torch.equal(at_best[k], kept[k]) for k in kept)
    saved = dict(load_run(out).model.named_parameters())
    assert all(torch.equal(saved[k], kept[k]) for k in kept)
    capsys.readouterr()
    assert main(["eval", "--adapter", str(out), "--max-eval", "16"]) == 0
    assert json.loads((out / "eval-test.json").read_text())["score"] == metrics["score"]
    assert main(["eval", "--adapter", str(out / "last"), "--max-eval", "16"]) == 0  # the last weights load too


def test_early_stopping_ends_the_run_after_patience_evaluations_without_progress(runs, capsys):
    out, patience, every = runs["root"] / "stopped", 2, 2
    args = [*runs["base"], "--output-dir", str(out), "--eval-every", str(every)]
    assert main([*args, "--early-stopping-patience", str(patience)]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    stopped = metrics["stopped_at_step"]
    assert metrics["stopped_early"] and stopped < MAX_STEPS and metrics["steps"] == stopped, metrics
    assert metrics["best_step"] == stopped - patience * every and metrics["eval_history"][-1]["step"] == stopped
    assert f"no better score in {patience} evaluations: stopping early" in printed
    assert (out / "checkpoints" / f"step-{stopped:08d}").is_dir()  # checkpointed where it stopped
