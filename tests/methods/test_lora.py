"""LoRA and LoRA (all linear): equal to Hugging Face peft, per-example routing, merge, unload, save/load."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.lora import LoRAAllConfig, LoRAConfig
from methods import _helpers as helpers
from tiny_models import build, text_batch


def _perturb(model: PeftModel) -> None:
    helpers.redraw_adapter_weights(model, scale=0.2)  # B starts at zero


# ------------------------------------------------------------------------------------------------------- peft
PEFT_CASES = [(LoRAConfig, a) for a in ("bert", "llama", "t5")] + [(LoRAAllConfig, a) for a in helpers.ARCHS]


@pytest.mark.parametrize(("config_cls", "arch"), PEFT_CASES, ids=lambda v: getattr(v, "method", v))
def test_equals_peft_lora(config_cls, arch):
    ours = get_peft_model(build(arch), config_cls(rank=4, alpha=12.0, modules_to_save=helpers.trained_heads(arch)))
    _perturb(ours)
    helpers.assert_equals_peft(ours, helpers.peft_twin(ours, arch), arch)


def test_gpt2_lora_adapts_only_the_q_and_v_thirds_of_c_attn():
    model = get_peft_model(build("gpt2"), LoRAConfig())
    _perturb(model)
    adapted, plain = helpers.gpt2_c_attn_outputs(model)
    q, k, v = (adapted - plain).split(32, dim=-1)
    assert q.abs().min() > 0 and v.abs().min() > 0
    assert torch.equal(k, torch.zeros_like(k))
    # one LoRA per third: 2 · r · (in + d) per layer, not r · (in + 3d)
    assert model.method_parameter_count() == 2 * 2 * 8 * (32 + 32)


# ---------------------------------------------------------------------------------------------------- routing
@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_mixed_batch_of_three_tasks_equals_each_example_alone(arch):
    model = get_peft_model(build(arch), LoRAAllConfig(tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3, length=6)
    mixed = helpers.assert_mixed_batch_equals_each_example_alone(
        model, arch, batch, ["c", "a", "b"], atol=1e-5, rtol=1e-5
    )
    assert not torch.allclose(mixed[0], helpers.small_batch_logits(model, arch, batch, task="a")[0], atol=1e-4)


# ------------------------------------------------------------------------------------------------ merge/unload
@pytest.mark.parametrize("arch", helpers.ARCHS)
@pytest.mark.parametrize("task", ["a", "b"])
def test_merge_each_task_gives_equal_outputs(arch, task):
    model = get_peft_model(build(arch), LoRAConfig(tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.small_batch_logits(model, arch, task=task)
    merged = model.merge_and_unload(task=task)
    assert not any(n.startswith("lora") for n, _ in merged.named_modules())
    torch.testing.assert_close(helpers.small_batch_logits(merged, arch), expected, atol=1e-5, rtol=1e-5)


def test_merge_adds_scaled_BA_to_the_conv1d_slice():
    model = get_peft_model(build("gpt2"), LoRAConfig(rank=2, alpha=6.0))
    _perturb(model)
    c_attn = model.base_model.transformer.h[1].attn.c_attn
    before = c_attn.weight.detach().clone()
    bank = model.adapter_modules["transformer__h__1__attn__c_attn__v"]
    expected_v = before[:, 64:] + (bank.B[0] @ bank.A[0] * 3.0).t()
    model.merge_and_unload()
    torch.testing.assert_close(c_attn.weight[:, 64:], expected_v)
    assert torch.equal(c_attn.weight[:, 32:64], before[:, 32:64])


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_unload_restores_the_base_bit_for_bit(arch):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    plain = helpers.small_batch_logits(base, arch)
    model = get_peft_model(base, LoRAAllConfig())
    _perturb(model)
    restored = model.unload()
    assert restored is base and not restored._forward_hooks
    assert all(torch.equal(state[k], v) for k, v in restored.state_dict().items())
    assert torch.equal(helpers.small_batch_logits(restored, arch), plain)


# -------------------------------------------------------------------------------------------------- save/load
@pytest.mark.parametrize("arch", ["gpt2", "t5"])
def test_save_load_round_trip_and_task_subset(arch, tmp_path):
    model = get_peft_model(build(arch), LoRAConfig(tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.small_batch_logits(model, arch, task="b")
    loaded = helpers.save_and_reload(model, arch, tmp_path)
    torch.testing.assert_close(helpers.small_batch_logits(loaded, arch, task="b"), expected, atol=0, rtol=0)
    only_b = PeftModel.from_pretrained(build(arch), tmp_path, tasks=["b"])
    torch.testing.assert_close(helpers.small_batch_logits(only_b, arch), expected, atol=0, rtol=0)


# ------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"rank": 0}, "rank"),
        ({"alpha": -1.0}, "alpha"),
        ({"dropout": 1.5}, "dropout"),
        ({"targets": ["q", "layernorm"]}, "targets"),
        ({"targets": []}, "targets"),
        ({"roles": {"q": []}}, "roles"),
    ],
)
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=rf"LoRAConfig\.{field}="):
        LoRAConfig(**kwargs)


def test_its_size_is_the_rank_and_user_roles_attach_unknown_names():
    assert (LoRAConfig.size_field, LoRAConfig().rank, LoRAConfig().dropout) == ("rank", 8, 0.0)
    model = get_peft_model(build("bert"), LoRAConfig(targets=["q"], roles={"q": [r"bert\.encoder\.layer\.0\..*query"]}))
    assert list(model.adapter_modules) == ["bert__encoder__layer__0__attention__self__query"]
