"""Calls of the model: ``task=`` reaches every method (those without tasks ignore it); batches move to the model's
device."""

import torch

from adalink import BitFitConfig, get_peft_model
from adalink.tasks import calls
from adalink.tasks.calls import model_call, model_generate, to_device
from tiny_models import build


class _Recorder(torch.nn.Module):
    def forward(self, **kwargs):
        return kwargs

    def generate(self, **kwargs):
        return kwargs


def test_task_ids_reach_a_peft_model_and_its_process_wrappers_but_not_a_plain_model(monkeypatch):
    inputs, task_ids = {"input_ids": torch.ones(2, 3)}, torch.tensor([0, 1])
    monkeypatch.setattr(calls, "PeftModel", _Recorder)  # stands for adalink's PeftModel
    called = model_call(_Recorder())(inputs, task_ids, output_hidden_states=True)
    assert set(called) == {"input_ids", "task", "output_hidden_states"} and called["task"] is task_ids
    assert model_generate(_Recorder())(inputs, task_ids, max_new_tokens=2)["task"] is task_ids
    wrapper = torch.nn.Module()
    wrapper.module = _Recorder()  # DDP / FSDP keep the model as .module
    wrapper.forward = wrapper.module.forward
    assert model_call(wrapper)(inputs, task_ids)["task"] is task_ids
    monkeypatch.setattr(calls, "PeftModel", torch.nn.Linear)  # now _Recorder is a plain model
    assert set(model_call(_Recorder())(inputs, task_ids)) == {"input_ids"}
    assert set(model_generate(_Recorder())(inputs, task_ids)) == {"input_ids"}


def test_a_method_without_tasks_ignores_the_task_ids_of_a_multi_task_batch():
    model = get_peft_model(build("bert"), BitFitConfig())
    ids = torch.randint(5, 60, (3, 7), generator=torch.Generator().manual_seed(0))
    plain = model(input_ids=ids).logits
    routed = model_call(model)({"input_ids": ids}, torch.tensor([0, 4, 2])).logits
    assert torch.equal(plain, routed)


def test_to_device_moves_every_tensor():
    batch = to_device({"a": torch.ones(1), "b": torch.zeros(2)}, torch.device("meta"))
    assert {name: t.device.type for name, t in batch.items()} == {"a": "meta", "b": "meta"}
