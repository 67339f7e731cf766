"""Scoring on a split: accuracy per task equals the share of ``predict_batch`` labels that are right."""

from types import SimpleNamespace

import pytest

from adalink.data import Example
from adalink.training.evaluation import evaluate, predict_batch
from adalink.training.formats import TaskInfo
from adalink.training.loading import setup_model
from adalink.training.stream import TaskExample
from tiny_models import save_tiny_checkpoint

TEXTS = ["good movie", "awful food service", "sad", "great happy food 12", "the day was very not lovely"]


def test_scores_are_the_share_of_right_predictions_and_the_mode_is_restored(tmp_path):
    labels = (0, 1, 1, 0, 1)
    setup = setup_model(save_tiny_checkpoint(tmp_path / "bert", "bert"), "auto", [TaskInfo("t", ("a", "b"))])
    model = setup.build_base(seed=0).train()
    examples = [Example(text, label) for text, label in zip(TEXTS, labels, strict=True)]
    data = SimpleNamespace(name="t", label_names=("a", "b"), test=examples)
    scores = evaluate(
        model, False, setup.fmt, setup.tokenizer, [data], split="test", max_examples=4, max_length=16, batch_size=3
    )
    assert model.training  # evaluation switches to eval mode and back
    details: list = []
    items = [TaskExample(0, e) for e in examples[:4]]
    predicted = predict_batch(model.eval(), False, setup.fmt, setup.tokenizer, items, 16, details)
    assert scores == {"t": pytest.approx(sum(p == e.label for p, e in zip(predicted, examples, strict=False)) / 4)}
    assert len(details) == 4 and all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in details)  # rounded
