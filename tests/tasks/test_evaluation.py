"""Scoring on a split: accuracy per task equals the share of ``predict_batch`` labels that are right."""

from types import SimpleNamespace

import pytest

from adalink.data import Example
from adalink.runs.loading import setup_model
from adalink.tasks.evaluation import evaluate, exact_match, predict_batch, rouge_l, rouge_l_scores
from adalink.tasks.examples import TaskExample
from adalink.tasks.formats import TaskInfo
from tiny_models import save_tiny_checkpoint

TEXTS = ["good movie", "awful food service", "sad", "great happy food 12", "the day was very not lovely"]
LABELS = (0, 1, 1, 0, 1)


def _labelled(tmp_path, architecture: str, fmt: str):
    """(setup, base model, examples, task data) of a tiny ``architecture`` on TEXTS labelled a / b."""
    setup = setup_model(save_tiny_checkpoint(tmp_path / architecture, architecture), fmt, [TaskInfo("t", ("a", "b"))])
    examples = [Example(text, label) for text, label in zip(TEXTS, LABELS, strict=True)]
    return setup, setup.build_base(seed=0), examples, SimpleNamespace(name="t", label_names=("a", "b"), test=examples)


def test_scores_are_the_share_of_right_predictions_and_the_mode_is_restored(tmp_path):
    setup, model, examples, data = _labelled(tmp_path, "bert", "auto")
    model.train()
    scores = evaluate(
        model, setup.fmt, setup.tokenizer, [data], split="test", max_examples=4, max_length=16, batch_size=3
    )
    assert model.training  # evaluation switches to eval mode and back
    details: list = []
    items = [TaskExample(0, e) for e in examples[:4]]
    predicted = predict_batch(model.eval(), setup.fmt, setup.tokenizer, items, 16, details)
    assert scores == {"t": pytest.approx(sum(p == e.label for p, e in zip(predicted, examples, strict=False)) / 4)}
    assert len(details) == 4 and all(sum(row) == pytest.approx(1.0, abs=1e-5) for row in details)  # rounded


def test_example_records_are_the_scored_examples_in_order(tmp_path):
    setup, model, _, data = _labelled(tmp_path, "llama", "text2text")
    model.eval()
    records: list = []
    scores = evaluate(
        model, setup.fmt, setup.tokenizer, [data], split="test", max_examples=4, max_length=16, batch_size=3,
        examples_out=records,
    )  # fmt: skip
    assert [r["index"] for r in records] == [0, 1, 2, 3] and {r["task"] for r in records} == {"t"}
    assert [r["reference"] for r in records] == ["a", "b", "b", "a"]
    assert scores["t"] == pytest.approx(sum(r["score"] for r in records) / 4)
    for record in records:  # the label is read from the generated text; an answer naming no label is None
        assert record["prediction"] in ("a", "b", None) and isinstance(record["generated"], str)
        assert record["score"] == float(record["prediction"] == record["reference"])


def test_rouge_l_and_exact_match_of_generations():
    assert exact_match([" The  Cat sat\n", "a dog"], ["the cat sat", "a cat"]) == 0.5  # spaces and case ignored
    assert exact_match(["yes\nand more"], ["yes"], first_line=True) == 1.0 and exact_match([], []) == 0.0
    assert rouge_l(["the cat sat on the mat"], ["the cat sat"]) == pytest.approx(2 * 1 * 0.5 / 1.5)  # P 1/2, R 1
    assert rouge_l(["x\nthe cat sat"], ["the cat sat"], first_line=True) == 0.0


def test_sft_scores_are_rouge_l_of_the_greedy_generations(tmp_path):
    from adalink.data import GenerationData, GenerationExample
    from adalink.tasks.evaluation import generate_texts

    setup = setup_model(save_tiny_checkpoint(tmp_path / "llama", "llama"), "sft", [TaskInfo("g", ())])
    model = setup.build_base(seed=0).eval()
    examples = tuple(GenerationExample(f"say {text}", text) for text in TEXTS)
    data = GenerationData("g", examples, (), examples, max_new_tokens=5)
    rouge, exact = {}, {}
    scores = evaluate(
        model, setup.fmt, setup.tokenizer, [data], split="test", max_examples=None, max_length=16,
        batch_size=2, rouge_l=rouge, exact_match=exact,
    )  # fmt: skip
    items = [TaskExample(0, e) for e in examples]
    generated = generate_texts(model, setup.fmt, setup.tokenizer, items, 16, 5)
    assert all(len(setup.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 5 for text in generated)
    assert scores == rouge == {"g": pytest.approx(rouge_l(generated, list(TEXTS)))}
    assert exact == {"g": exact_match(generated, list(TEXTS))}
    assert rouge_l_scores(generated, list(TEXTS)) == pytest.approx(
        [rouge_l([g], [ref]) for g, ref in zip(generated, TEXTS, strict=True)]
    )
