"""``metrics.json``: parameter counts with the new head counted apart, full tuning included; the per-step losses."""

import json

import pytest

from adalink.training.args import TrainArgs
from adalink.training.loop import train
from adalink.training.outputs import stalled_loss_warning
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


@pytest.mark.parametrize("method", ["full", "adalink"])
def test_metrics_count_the_head_apart_for_full_tuning_too(method, tmp_path):
    model = save_tiny_checkpoint(tmp_path / "tiny-bert", "bert")
    data = write_sentiment_csv(tmp_path / "s.csv", 40)
    args = TrainArgs(
        model=model, train_file=data, method=method, max_steps=2, batch_size=4, head_lr=1e-2, output_dir=str(tmp_path)
    )
    metrics = train(args)
    hidden = 32  # tiny BERT's width; the head is Linear(32, 2)
    assert metrics["head_params"] == hidden * 2 + 2
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["head_params"] == metrics["head_params"]
    assert len(saved["losses"]) == saved["steps"] == 2 and saved["initial_loss"] == pytest.approx(
        sum(saved["losses"]) / 2, abs=1e-6
    )
    assert saved["trainable_params"] + saved["head_params"] == sum(p.numel() for p in _trainable(tmp_path, method))


def _trainable(run_dir, method):
    from adalink.runs.reading import load_run

    loaded = load_run(run_dir)
    if method == "full":
        return list(loaded.model.parameters())
    return [*loaded.model.adapter_modules.parameters(), *loaded.model.get_base_model().classifier.parameters()]


def test_a_loss_that_has_not_moved_is_named_with_the_rate_and_steps():
    flat = [5.0] * 15 + [4.95] * 15  # 1 % lower: not moved
    warning = stalled_loss_warning(flat, 2e-3, 30)
    assert warning is not None and "has not moved" in warning and "0.002" in warning and "--max-steps 30" in warning
    assert stalled_loss_warning([5.0] * 15 + [4.0] * 15, 2e-3, 30) is None  # 20 % lower: it learns
    assert stalled_loss_warning([5.0] * 19, 2e-3, 19) is None  # too short to judge
