"""DoRA: equal to Hugging Face peft (use_dora=True), the decomposition itself, merge, unload, save/load."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.dora import DoRAConfig
from methods import _helpers as helpers
from tiny_models import build


def _perturb(model: PeftModel, seed: int = 3) -> None:
    with torch.no_grad():  # magnitudes (the weights' row norms) get 20% noise, A and B are redrawn
        for name, p, noise in helpers.adapter_weights_with_noise(model, seed):
            p.copy_(p * (1 + 0.2 * noise) if name.endswith("magnitude") else noise * 0.2)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_equals_peft_dora(arch):
    # GPT-2: peft adapts the whole fused c_attn, so compare with targets q, k, v there
    targets = ["q", "k", "v"] if arch == "gpt2" else ["q", "v"]
    config = DoRAConfig(rank=4, alpha=8.0, targets=targets, modules_to_save=helpers.trained_heads(arch))
    ours = get_peft_model(build(arch), config)
    _perturb(ours)
    helpers.assert_equals_peft(ours, helpers.peft_twin(ours, arch), arch)


def test_adapted_weight_is_magnitude_times_unit_direction():
    model = get_peft_model(build("llama"), DoRAConfig(rank=2, alpha=2.0))
    _perturb(model)
    q_proj = model.base_model.model.layers[0].self_attn.q_proj
    layer = model.adapter_modules["model__layers__0__self_attn__q_proj"]
    weight = q_proj.weight.detach().clone()
    direction = weight + layer.lora.B[0] @ layer.lora.A[0]
    expected_weight = layer.magnitude[0][:, None] * direction / direction.norm(dim=1, keepdim=True)
    x = torch.randn(2, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(q_proj(x), x @ expected_weight.t(), atol=1e-5, rtol=1e-5)
    model.merge_and_unload()
    torch.testing.assert_close(q_proj.weight, expected_weight, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_merge_save_load_and_unload(arch, tmp_path):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, DoRAConfig())
    torch.testing.assert_close(
        helpers.small_batch_logits(model, arch), helpers.small_batch_logits(build(arch), arch), atol=1e-5, rtol=1e-5
    )
    _perturb(model)
    expected = helpers.small_batch_logits(model, arch)
    loaded = helpers.save_and_reload(model, arch, tmp_path)
    torch.testing.assert_close(helpers.small_batch_logits(loaded, arch), expected, atol=0, rtol=0)
    merged = loaded.merge_and_unload()
    torch.testing.assert_close(helpers.small_batch_logits(merged, arch), expected, atol=1e-5, rtol=1e-5)
    restored = model.unload()
    assert all(torch.equal(state[k], v) for k, v in restored.state_dict().items())
    assert not any(m._forward_hooks for m in restored.modules())


def test_gpt2_dora_adapts_only_the_q_and_v_thirds():
    model = get_peft_model(build("gpt2"), DoRAConfig())
    _perturb(model)
    adapted, plain = helpers.gpt2_c_attn_outputs(model, layer=1)
    q, k, v = (adapted - plain).split(32, dim=-1)
    assert q.abs().max() > 0 and v.abs().max() > 0 and torch.equal(k, torch.zeros_like(k))


@pytest.mark.parametrize(("kwargs", "field"), [({"rank": -2}, "rank"), ({"targets": ["ffn"]}, "targets")])
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=rf"DoRAConfig\.{field}="):
        DoRAConfig(**kwargs)


def test_each_task_has_its_own_dora_and_merges_alone():
    model = get_peft_model(build("llama"), DoRAConfig(rank=2, alpha=2.0, tasks=["a", "b"]))
    _perturb(model)
    q_proj = model.base_model.model.layers[0].self_attn.q_proj
    layer = model.adapter_modules["model__layers__0__self_attn__q_proj"]
    weight = q_proj.weight.detach().clone()
    x = torch.randn(2, 3, 32)
    with torch.no_grad():
        outputs = {}
        for task in (0, 1):
            direction = weight + layer.lora.B[task] @ layer.lora.A[task]
            expected = layer.magnitude[task][:, None] * direction / direction.norm(dim=1, keepdim=True)
            with model.router.route(["a", "b"][task], 2, x.device):
                outputs[task] = q_proj(x)
            torch.testing.assert_close(outputs[task], x @ expected.t(), atol=1e-5, rtol=1e-5)
        assert not torch.allclose(outputs[0], outputs[1])
        with model.router.route(["b", "a"], 2, x.device):  # one example per task in one call
            mixed = q_proj(x)
    torch.testing.assert_close(mixed, torch.stack([outputs[1][0], outputs[0][1]]), atol=1e-5, rtol=1e-5)
    model.merge_and_unload(task="b")
    torch.testing.assert_close(q_proj(x), outputs[1], atol=1e-5, rtol=1e-5)
