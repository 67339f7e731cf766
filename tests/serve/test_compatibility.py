"""What can share one forward pass: the fields adapters must agree on, the stacked config, and runs refused alone."""

from __future__ import annotations

import json
import shutil

import pytest

from adalink import AdaLinkConfig
from adalink.io import read_adapter
from adalink.serve.compatibility import IncompatibleAdapterError, read_adapter_run, shared_fields, stacked_config
from serve_support import rewrite_adapter


def test_training_only_fields_and_rank_need_not_agree_but_the_activation_must():
    a = AdaLinkConfig(rank=4, dropout=0.1, tasks=["a"])
    b = AdaLinkConfig(rank=8, dropout=0.0, tasks=["b"], init="normal")
    assert shared_fields(a) == shared_fields(b)  # rank is zero-padded, the rest shapes training only
    assert shared_fields(a) != shared_fields(AdaLinkConfig(activation="gelu"))


def test_stacked_config_takes_the_largest_rank_every_task_and_no_dropout():
    a, b = AdaLinkConfig(rank=4, tasks=["a"]), AdaLinkConfig(rank=8, tasks=["b", "c"])
    stacked = stacked_config(a, [a, b], ["a", "b", "c"])
    assert isinstance(stacked, AdaLinkConfig)
    assert (stacked.rank, stacked.tasks, stacked.dropout, stacked.modules_to_save) == (8, ["a", "b", "c"], 0.0, [])


@pytest.mark.parametrize(
    ("run", "match"),
    [
        # a full-tuning run from before full tuning was a method, and one from after
        ({"saves_adapter": False, "format": "classification"}, "fully fine-tuned model"),
        ({"method": "full", "format": "classification"}, "fully fine-tuned model"),
        ({"method": "adalink", "format": "vqa"}, "serves text tasks"),
    ],
)
def test_runs_that_cannot_be_served_are_refused_on_their_own(tmp_path, run, match):
    (tmp_path / "run.json").write_text(json.dumps({"model": "m", "tasks": [], **run}))
    with pytest.raises(IncompatibleAdapterError, match=match):
        read_adapter_run(tmp_path)


def _as_sft_run(run_dir, copy, task: str):
    """A copy of a text-to-text run relabelled as an sft run (no labels) of one task named ``task``."""
    shutil.copytree(run_dir, copy)
    run = json.loads((copy / "run.json").read_text())
    run["format"], run["tasks"] = "sft", [{"name": task}]
    (copy / "run.json").write_text(json.dumps(run))
    document, tensors = read_adapter(copy)
    document["config"]["tasks"] = [task]
    rewrite_adapter(copy, document, tensors)
    return copy


def test_an_sft_run_is_served_as_a_text_to_text_run(text2text_runs, tmp_path):
    """A generative format other than text2text ("sft": prompt/response pairs, no labels) generates the same way."""
    from fastapi.testclient import TestClient

    from adalink.serve import AdapterStack
    from adalink.serve.app import create_app

    sft = _as_sft_run(text2text_runs["topic"], tmp_path / "topic-sft", "topic")
    stack = AdapterStack.from_runs([sft])
    assert stack.generative and stack.format_name == "sft" and stack.tasks["topic"].labels == ()
    prompt = stack.encode("good food")
    expected = AdapterStack.from_runs([text2text_runs["topic"]]).complete([("topic", prompt, 6)])
    assert stack.complete([("topic", prompt, 6)]) == expected
    with TestClient(create_app(stack)) as client:
        answer = client.post("/v1/completions", json={"model": "topic", "prompt": "good food", "temperature": 0})
        assert answer.status_code == 200 and answer.json()["choices"][0]["text"]
        refused = client.post("/v1/classify", json={"task": "topic", "inputs": ["good food"]})
        assert refused.status_code == 400 and "no labels" in refused.json()["error"]["message"]


def test_text_to_text_and_sft_runs_share_one_server(text2text_runs, tmp_path):
    """Both generative formats generate with the base's LM head: one stack routes a mixed batch of their tasks."""
    from adalink.serve import AdapterStack

    sft = _as_sft_run(text2text_runs["topic"], tmp_path / "notes-sft", "notes")
    mixed = AdapterStack.from_runs([text2text_runs["sentiment"], sft])
    assert mixed.generative and mixed.tasks["notes"].labels == () and mixed.tasks["sentiment"].labels
    prompts = [("notes", mixed.encode("good food"), 5), ("sentiment", mixed.encode("good food"), 5)]
    alone = AdapterStack.from_runs([sft]).complete(prompts[:1]) + AdapterStack.from_runs(
        [text2text_runs["sentiment"]]
    ).complete(prompts[1:])
    assert mixed.complete(prompts) == alone
    texts = ["good food", "sad"]
    expected = AdapterStack.from_runs([text2text_runs["sentiment"]]).classify([("sentiment", t) for t in texts])
    assert mixed.classify([("sentiment", t) for t in texts]) == expected
