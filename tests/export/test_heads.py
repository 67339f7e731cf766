"""Task types, and a multi-task run's shared classification head cut to each task's rows."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import BertForSequenceClassification

from adalink import AdaLinkConfig, get_peft_model
from adalink.export import HeadRows, TaskDetails, export_peft, task_type
from export import _helpers as helpers
from tiny_models import build, text_batch, tiny_llava


@pytest.mark.parametrize(
    ("arch", "expected"), [("bert", "SEQ_CLS"), ("gpt2", "CAUSAL_LM"), ("llama", "CAUSAL_LM"), ("t5", "SEQ_2_SEQ_LM")]
)
def test_task_type_of_each_tiny_model(arch, expected):
    assert task_type(build(arch)) == expected


def test_llava_has_no_peft_task_type():
    assert task_type(tiny_llava()) is None


def _bert_with_labels(num_labels: int) -> BertForSequenceClassification:
    """The tiny BERT's encoder under a fresh head of another width (initialised differently from ours)."""
    reference = build("bert")
    config = copy.deepcopy(reference.config)
    config.num_labels = num_labels
    torch.manual_seed(1)
    model = BertForSequenceClassification(config)
    model.bert.load_state_dict(reference.bert.state_dict())
    return model.eval()


def test_shared_head_is_cut_to_each_tasks_rows(tmp_path):
    ours = get_peft_model(build("bert"), AdaLinkConfig(rank=4, tasks=["a", "b"], modules_to_save=["classifier"]))
    helpers.perturb(ours)
    rows = {"a": (0, 2), "b": (2, 3)}  # the tiny BERT's 3-way head: task a has 2 labels, task b 1
    details = {
        t: TaskDetails(head=HeadRows("classifier", *r), info={"num_labels": r[1] - r[0]}) for t, r in rows.items()
    }
    directories = export_peft(ours, tmp_path, details=details)
    batch = text_batch()
    for (task, (start, stop)), directory in zip(rows.items(), directories, strict=True):
        assert json.loads((directory / "adalink_task.json").read_text())["num_labels"] == stop - start
        theirs = helpers.load_in_peft("bert", [directory], base=_bert_with_labels(stop - start))
        with torch.no_grad():
            expected = ours(**batch, task=task).logits[:, start:stop]
            torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-5, rtol=1e-5)


def test_sequence_classifier_export_carries_the_head_peft_expects_even_untrained(tmp_path):
    ours = helpers.perturb(get_peft_model(build("bert"), AdaLinkConfig(rank=4)))  # the head is not trained here
    export_peft(ours, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    helpers.assert_same_outputs(ours, helpers.load_in_peft("bert", [tmp_path]), "bert")
