"""Calls of the model: ``task=`` reaches task-aware methods only; batches move to the model's device."""

import torch

from adalink.training.calls import routed_call, routed_generate, to_device


class _Recorder(torch.nn.Module):
    def forward(self, **kwargs):
        return kwargs

    def generate(self, **kwargs):
        return kwargs


def test_task_ids_are_passed_only_to_task_aware_models():
    inputs, task_ids = {"input_ids": torch.ones(2, 3)}, torch.tensor([0, 1])
    aware = routed_call(_Recorder(), task_aware=True)(inputs, task_ids, output_hidden_states=True)
    assert set(aware) == {"input_ids", "task", "output_hidden_states"} and aware["task"] is task_ids
    assert set(routed_call(_Recorder(), task_aware=False)(inputs, task_ids)) == {"input_ids"}
    assert routed_generate(_Recorder(), task_aware=True)(inputs, task_ids, max_new_tokens=2)["task"] is task_ids
    assert set(routed_generate(_Recorder(), task_aware=False)(inputs, task_ids)) == {"input_ids"}


def test_to_device_moves_every_tensor():
    batch = to_device({"a": torch.ones(1), "b": torch.zeros(2)}, torch.device("meta"))
    assert {name: t.device.type for name, t in batch.items()} == {"a": "meta", "b": "meta"}
