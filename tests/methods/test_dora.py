"""DoRA: equal to Hugging Face peft (use_dora=True), the decomposition itself, merge, unload, save/load."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig
from peft import get_peft_model as peft_get_peft_model

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.dora import DoRAConfig
from adalink.methods.lora import find_linear_sites
from tiny_models import build, model_inputs, text_batch

ARCHS = ("bert", "gpt2", "llama", "t5")


def _perturb(model: PeftModel, seed: int = 3) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.adapter_modules.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(p * (1 + 0.2 * noise) if name.endswith("magnitude") else noise * 0.2)


def _logits(model, arch: str, batch=None, **kwargs) -> torch.Tensor:
    batch = batch if batch is not None else text_batch(batch=3, length=6)
    with torch.no_grad():
        return model(**model_inputs(arch, batch), **kwargs).logits


@pytest.mark.parametrize("arch", ARCHS)
def test_equals_peft_dora(arch):
    # GPT-2: peft adapts the whole fused c_attn, so compare with targets q, k, v there
    targets = ["q", "k", "v"] if arch == "gpt2" else ["q", "v"]
    ours = get_peft_model(build(arch), DoRAConfig(rank=4, alpha=8.0, targets=targets))
    _perturb(ours)
    sites = find_linear_sites(build(arch), targets, method="dora")
    reference = peft_get_peft_model(
        build(arch),
        LoraConfig(
            r=4,
            lora_alpha=8,
            use_dora=True,
            target_modules=[s.path for s in sites],
            fan_in_fan_out=arch == "gpt2",
        ),
    )
    inner = reference.base_model.model
    with torch.no_grad():
        for site in sites:
            layer, theirs = ours.adapter_modules[site.key], inner.get_submodule(site.path)
            theirs.lora_A["default"].weight.copy_(layer.lora.A[0])
            theirs.lora_B["default"].weight.copy_(layer.lora.B[0])
            theirs.lora_magnitude_vector["default"].weight.copy_(layer.magnitude)
    torch.testing.assert_close(_logits(ours, arch), _logits(reference, arch), atol=1e-5, rtol=1e-5)
    assert ours.get_nb_trainable_parameters() == reference.get_nb_trainable_parameters()


def test_adapted_weight_is_magnitude_times_unit_direction():
    model = get_peft_model(build("llama"), DoRAConfig(rank=2, alpha=2.0))
    _perturb(model)
    q_proj = model.base_model.model.layers[0].self_attn.q_proj
    layer = model.adapter_modules["model__layers__0__self_attn__q_proj"]
    weight = q_proj.weight.detach().clone()
    direction = weight + layer.lora.B[0] @ layer.lora.A[0]
    expected_weight = layer.magnitude[:, None] * direction / direction.norm(dim=1, keepdim=True)
    x = torch.randn(2, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(q_proj(x), x @ expected_weight.t(), atol=1e-5, rtol=1e-5)
    model.merge_and_unload()
    torch.testing.assert_close(q_proj.weight, expected_weight, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_merge_save_load_and_unload(arch, tmp_path):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, DoRAConfig())
    torch.testing.assert_close(_logits(model, arch), _logits(build(arch), arch), atol=1e-5, rtol=1e-5)
    _perturb(model)
    expected = _logits(model, arch)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build(arch), tmp_path)
    torch.testing.assert_close(_logits(loaded, arch), expected, atol=0, rtol=0)
    merged = loaded.merge_and_unload()
    torch.testing.assert_close(_logits(merged, arch), expected, atol=1e-5, rtol=1e-5)
    restored = model.unload()
    assert all(torch.equal(state[k], v) for k, v in restored.state_dict().items())
    assert not any(m._forward_hooks for m in restored.modules())


def test_gpt2_dora_adapts_only_the_q_and_v_thirds():
    model = get_peft_model(build("gpt2"), DoRAConfig())
    _perturb(model)
    c_attn = model.base_model.transformer.h[1].attn.c_attn
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        adapted = c_attn(x)
        with model.disable_adapter():
            plain = c_attn(x)
    q, k, v = (adapted - plain).split(32, dim=-1)
    assert q.abs().max() > 0 and v.abs().max() > 0 and torch.equal(k, torch.zeros_like(k))


@pytest.mark.parametrize(("kwargs", "field"), [({"rank": -2}, "rank"), ({"targets": ["ffn"]}, "targets")])
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=rf"DoRAConfig\.{field}="):
        DoRAConfig(**kwargs)
