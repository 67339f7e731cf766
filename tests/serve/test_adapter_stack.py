"""AdapterStack: many runs' adapters on one base, one forward pass per mixed batch, exactly what each run predicts."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from adalink.data import Example
from adalink.fingerprint import FingerprintMismatchError
from adalink.io import read_adapter
from adalink.runs.reading import load_run
from adalink.serve import AdapterConflictError, AdapterStack, IncompatibleAdapterError, read_adapter_run
from adalink.tasks.evaluation import predict_batch
from adalink.tasks.examples import TaskExample
from serve_support import rewrite_adapter, train_run, write_topic_csv

TEXTS = ["good movie", "awful food service", "the day was very not lovely", "sad", "great happy food 12"]


@pytest.fixture(scope="module")
def stack(classification_runs) -> AdapterStack:
    return AdapterStack.from_runs([classification_runs["sentiment"], classification_runs["topic"]])


def _alone(directory, texts: list[str]) -> tuple[list[str], list]:
    """Labels and details from `adalink predict`'s code path on the run by itself."""
    run = load_run(directory)
    details: list = []
    items = [TaskExample(0, Example(text, 0)) for text in texts]
    labels = predict_batch(run.model, run.fmt, run.tokenizer, items, run.run["max_length"], details)
    names = run.fmt.tasks[0].label_names
    return [names[i] if i >= 0 else None for i in labels], details


def test_each_task_answers_what_its_run_predicts_alone(stack, classification_runs):
    # sentiment has rank 4 and topic rank 8: sentiment's AdaLink is zero-padded inside the stack
    assert stack.model.peft_config.rank == 8 and list(stack.tasks) == ["sentiment", "topic"]
    for task in ("sentiment", "topic"):
        labels, probabilities = _alone(classification_runs[task], TEXTS)
        results = stack.classify([(task, text) for text in TEXTS])
        assert [r.label for r in results] == labels
        for result, expected in zip(results, probabilities, strict=True):
            assert list(result.probabilities.values()) == pytest.approx(expected, abs=1e-5)


def test_mixed_batch_equals_each_example_alone(stack):
    requests = [(task, text) for text in TEXTS for task in ("topic", "sentiment")]
    mixed = stack.classify(requests)
    for request, result in zip(requests, mixed, strict=True):
        (alone,) = stack.classify([request])
        assert result.task == request[0] and result.label == alone.label
        assert result.probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def test_mixed_lengths_answer_as_each_example_alone(stack):
    long_text = " ".join(TEXTS * 20)
    requests = [("topic", long_text), *(("sentiment", text) for text in TEXTS), ("sentiment", long_text)]
    mixed = stack.classify(requests)
    for request, result in zip(requests, mixed, strict=True):
        (alone,) = stack.classify([request])
        assert result.task == request[0] and result.label == alone.label
        assert result.probabilities == pytest.approx(alone.probabilities, abs=1e-5)


def test_routing_matters(stack, classification_runs, tmp_path):
    """A second copy of `topic` with other weights answers differently: the stack really routes per example."""
    other = tmp_path / "topic-b"
    shutil.copytree(classification_runs["topic"], other)
    run = json.loads((other / "run.json").read_text())
    run["tasks"][0]["name"] = "topic_b"
    (other / "run.json").write_text(json.dumps(run))
    document, tensors = read_adapter(other)
    document["config"]["tasks"] = ["topic_b"]
    tensors = {k: -v if k.endswith(".up") else v for k, v in tensors.items()}  # the opposite E·W_down·W_up
    rewrite_adapter(other, document, tensors)
    stack.add(read_adapter_run(other))
    try:
        both = stack.classify([("topic", TEXTS[0]), ("topic_b", TEXTS[0])])
        assert both[0].probabilities != pytest.approx(both[1].probabilities, abs=1e-3)
    finally:
        stack.remove("topic-b")
    assert list(stack.tasks) == ["sentiment", "topic"]


def test_text_to_text_classify_and_complete(text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["sentiment"], text2text_runs["topic"]])
    for task in ("sentiment", "topic"):
        labels, generated = _alone(text2text_runs[task], TEXTS)
        results = stack.classify([(task, text) for text in TEXTS])
        assert [r.generated for r in results] == generated and [r.label for r in results] == labels
    prompts = [(task, stack.encode(text), 6) for text in TEXTS for task in ("sentiment", "topic")]
    mixed = stack.complete(prompts)
    alone = [stack.complete([prompt])[0] for prompt in prompts]
    assert mixed == alone
    assert all(len(c.token_ids) <= 6 and c.finish_reason in ("stop", "length") for c in mixed)
    assert len({tuple(c.token_ids) for c in mixed}) > 1


def test_output_link_run_answers_what_it_predicts_alone(output_link_run, text2text_runs):
    stack = AdapterStack.from_runs([output_link_run])
    assert stack.model.peft_config.boundaries == ["input", "output"]
    labels, generated = _alone(output_link_run, TEXTS)
    results = stack.classify([("topic", text) for text in TEXTS])
    assert [r.generated for r in results] == generated and [r.label for r in results] == labels
    with pytest.raises(IncompatibleAdapterError, match="boundaries"):
        AdapterStack.from_runs([output_link_run, text2text_runs["sentiment"]])


def test_start_up_refusals(classification_runs, text2text_runs):
    sentiment, topic = classification_runs["sentiment"], classification_runs["topic"]
    with pytest.raises(AdapterConflictError, match="adapter named 'sentiment' is already served"):
        AdapterStack.from_runs([sentiment, topic, sentiment])
    with pytest.raises(AdapterConflictError, match=r"Task 'sentiment' .* is already served by adapter 'a'"):
        AdapterStack.from_runs({"a": sentiment, "b": sentiment})
    with pytest.raises(IncompatibleAdapterError, match="trained on different models"):
        AdapterStack.from_runs([sentiment, text2text_runs["topic"]])
    with pytest.raises(IncompatibleAdapterError, match=r"mix formats .* or generative \(sft, text2text\) runs"):
        AdapterStack.from_runs([sentiment, text2text_runs["topic"]], model=str(classification_runs["model"]))
    stack = AdapterStack.from_runs([sentiment])
    with pytest.raises(IncompatibleAdapterError, match="is a text2text run; this server serves classification runs"):
        stack.check(read_adapter_run(text2text_runs["topic"]))


@pytest.fixture
def other_bert(classification_runs, tmp_path):
    """Another tiny BERT (other weights) and a run trained on it."""
    from tiny_models import save_tiny_checkpoint

    torch.manual_seed(5)
    model = save_tiny_checkpoint(tmp_path / "other-bert", "bert")
    with torch.no_grad():  # same architecture, different weights
        from transformers import AutoModel

        base = AutoModel.from_pretrained(model)
        base.embeddings.word_embeddings.weight.add_(1.0)
        base.save_pretrained(model)
    return model


def test_adapter_for_another_base_is_refused(classification_runs, other_bert):
    with pytest.raises(FingerprintMismatchError, match="different base model"):
        AdapterStack.from_runs([classification_runs["sentiment"]], model=other_bert)


def test_incompatible_settings_are_refused(stack, classification_runs, tmp_path):
    gelu = tmp_path / "gelu"
    shutil.copytree(classification_runs["topic"], gelu)
    document, tensors = read_adapter(gelu)
    document["config"]["activation"], document["config"]["tasks"] = "gelu", ["topic_gelu"]
    rewrite_adapter(gelu, document, tensors)  # saved again: an edited adapter_config.json is refused as changed
    run = json.loads((gelu / "run.json").read_text())
    run["tasks"][0]["name"] = "topic_gelu"
    (gelu / "run.json").write_text(json.dumps(run))
    with pytest.raises(IncompatibleAdapterError, match="activation='gelu'"):
        stack.add(read_adapter_run(gelu))
    assert list(stack.tasks) == ["sentiment", "topic"]


def test_failed_add_leaves_the_served_stack_as_it_was(stack, classification_runs, tmp_path):
    before = stack.classify([("topic", TEXTS[1]), ("sentiment", TEXTS[1])])
    broken = tmp_path / "broken"
    data = write_topic_csv(tmp_path / "broken_topic.csv")
    train_run(str(classification_runs["model"]), data, broken, rank=4, seed=3)
    document, tensors = read_adapter(broken)
    tensors["modules_to_save.classifier.weight"] = tensors["modules_to_save.classifier.weight"][:2]  # 2 of 3 rows
    tensors["modules_to_save.classifier.bias"] = tensors["modules_to_save.classifier.bias"][:2]
    rewrite_adapter(broken, document, tensors)
    with pytest.raises(IncompatibleAdapterError, match="3 rows"):
        stack.add(read_adapter_run(broken))
    assert list(stack.tasks) == ["sentiment", "topic"] and list(stack.adapters) == ["sentiment", "topic"]
    assert len(stack.base.get_input_embeddings()._forward_hooks) == 1  # no hooks left behind by the failed build
    after = stack.classify([("topic", TEXTS[1]), ("sentiment", TEXTS[1])])
    assert [a.probabilities for a in after] == [b.probabilities for b in before]


def test_a_lower_precision_base_answers_as_the_float32_one(stack, classification_runs, text2text_runs):
    runs = [classification_runs["sentiment"], classification_runs["topic"]]
    for loading in ({"dtype": "bfloat16"}, {"quantize": "int8"}):
        low = AdapterStack.from_runs(runs, **loading)
        assert low.base.bert.embeddings.word_embeddings.weight.dtype == (
            torch.bfloat16 if "dtype" in loading else torch.float32
        )
        assert low.base.classifier.weight.dtype == torch.float32  # the adapters' stacked heads stay float32
        requests = [(task, text) for text in TEXTS for task in ("sentiment", "topic")]
        for ours, reference in zip(low.classify(requests), stack.classify(requests), strict=True):
            assert list(ours.probabilities.values()) == pytest.approx(list(reference.probabilities.values()), abs=0.05)
    generative = AdapterStack.from_runs([text2text_runs["sentiment"]], dtype="bfloat16")
    (completion,) = generative.complete([("sentiment", generative.encode("good movie"), 4)])
    assert 1 <= len(completion.token_ids) <= 4


def test_the_base_is_held_as_the_adapters_trained_unless_told(classification_runs, tmp_path):
    from adalink.cli import main

    data = write_topic_csv(tmp_path / "topic.csv", rows=40)
    args = ["train", "--model", str(classification_runs["model"]), "--train-file", data, "--max-steps", "1"]
    args += ["--batch-size", "8", "--max-eval", "4", "--dtype", "bfloat16", "--output-dir", str(tmp_path / "bf16")]
    assert main(args) == 0
    assert AdapterStack.from_runs([tmp_path / "bf16"]).loading.dtype == "bfloat16"
    mixed = [classification_runs["sentiment"], tmp_path / "bf16"]
    with pytest.raises(IncompatibleAdapterError, match=r"different dtype \['bfloat16', 'float32'\].*--dtype"):
        AdapterStack.from_runs(mixed)
    assert AdapterStack.from_runs(mixed, dtype="float32").loading.dtype == "float32"
