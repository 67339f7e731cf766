"""What can share one forward pass: the fields adapters must agree on, the stacked config, and runs refused alone."""

from __future__ import annotations

import json

import pytest

from adalink import AdaLinkConfig
from adalink.serve.compatibility import IncompatibleAdapterError, read_adapter_run, shared_fields, stacked_config


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
        ({"saves_adapter": False, "format": "classification"}, "fully fine-tuned model"),
        ({"saves_adapter": True, "format": "vqa"}, "serves text tasks"),
    ],
)
def test_runs_that_cannot_be_served_are_refused_on_their_own(tmp_path, run, match):
    (tmp_path / "run.json").write_text(json.dumps({"model": "m", "tasks": [], **run}))
    with pytest.raises(IncompatibleAdapterError, match=match):
        read_adapter_run(tmp_path)
