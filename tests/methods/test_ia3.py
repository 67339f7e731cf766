"""(IA)3: equal to Hugging Face peft, only k/v thirds of GPT-2's c_attn, per-example routing, merge, save/load."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.ia3 import IA3Config
from methods import _helpers as helpers
from tiny_models import build, text_batch


def _perturb(model: PeftModel) -> None:
    helpers.redraw_adapter_weights(model, scale=0.3, mean=1.0)  # scaling vectors start at one


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_equals_peft_ia3(arch):
    # GPT-2: peft rescales the whole fused c_attn, so compare with targets q, k, v there (k, v alone is tested below)
    targets = ["q", "k", "v"] if arch == "gpt2" else ["k", "v"]
    config = IA3Config(targets=targets, modules_to_save=helpers.trained_heads(arch))
    ours = get_peft_model(build(arch), config)
    _perturb(ours)
    helpers.assert_equals_peft(ours, helpers.peft_twin(ours, arch), arch)


def test_gpt2_rescales_only_the_k_and_v_thirds():
    model = get_peft_model(build("gpt2"), IA3Config())
    _perturb(model)
    adapted, plain = helpers.gpt2_c_attn_outputs(model)
    q, k, v = (adapted - plain).split(32, dim=-1)
    assert torch.equal(q, torch.zeros_like(q)) and k.abs().min() > 0 and v.abs().min() > 0
    l_k = model.adapter_modules["outputs"]["transformer__h__0__attn__c_attn__k"].scale[0]
    torch.testing.assert_close(adapted[..., 32:64], plain[..., 32:64] * l_k)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_mixed_batch_of_three_tasks_equals_each_example_alone(arch):
    model = get_peft_model(build(arch), IA3Config(tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3, length=6)
    helpers.assert_mixed_batch_equals_each_example_alone(model, arch, batch, ["b", "c", "a"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", helpers.ARCHS)
@pytest.mark.parametrize("task", ["a", "b"])
def test_merge_each_task_gives_equal_outputs(arch, task):
    model = get_peft_model(build(arch), IA3Config(tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.small_batch_logits(model, arch, task=task)
    merged = model.merge_and_unload(task=task)
    torch.testing.assert_close(helpers.small_batch_logits(merged, arch), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_unload_restores_the_base_and_save_load_round_trips(arch, tmp_path):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, IA3Config(tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.small_batch_logits(model, arch, task="b")
    loaded = helpers.save_and_reload(model, arch, tmp_path)
    torch.testing.assert_close(helpers.small_batch_logits(loaded, arch, task="b"), expected, atol=0, rtol=0)
    restored = model.unload()
    assert all(torch.equal(state[k], v) for k, v in restored.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in restored.modules())


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"targets": ["k", "ffn"]}, "targets"), ({"feedforward": ["mlp"]}, "feedforward"), ({"tasks": []}, "tasks")],
)
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=rf"IA3Config\.{field}="):
        IA3Config(**kwargs)
