"""UniPELT: gates, gated LoRA and gated adapter against their formulas, counts, routing, save/load, unload."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, FoldError, PeftModel, get_peft_model
from adalink.methods.roles import find_role
from adalink.methods.unipelt import TaskGate, UniPELTConfig
from tiny_models import build, model_inputs, text_batch

ARCHS = ("bert", "gpt2", "llama", "t5")


def _perturb(model: PeftModel, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.2)


def _logits(model, arch: str, batch=None, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(**model_inputs(arch, batch or text_batch()), **kwargs).logits


def _keep(seen: dict, key: str, value: torch.Tensor) -> None:
    seen.setdefault(key, value)  # the first call only; returning None leaves the module's input/output alone


def test_gate_is_the_sequence_mean_of_a_sigmoid_and_routes_per_example():
    torch.manual_seed(0)
    gate = TaskGate(2, 8)
    x = torch.randn(3, 5, 8)
    expected = torch.sigmoid(x @ gate.weight[1] + gate.bias[1]).mean(dim=1, keepdim=True)
    torch.testing.assert_close(gate(x, 1), expected)
    assert gate(x, 1).shape == (3, 1, 1)
    mixed = gate(x, torch.tensor([1, 0, 1]))
    torch.testing.assert_close(mixed[1], gate(x[1:2], 0)[0])
    torch.testing.assert_close(mixed[2], expected[2])


@pytest.mark.parametrize("arch", ARCHS)
def test_gated_adapter_and_gated_lora_follow_the_formulas(arch):
    base = build(arch)
    model = get_peft_model(base, UniPELTConfig())
    _perturb(model)
    seen = {}
    ffn_out = next(iter(find_role(base, "ffn_out").values()))
    ffn_out.register_forward_pre_hook(lambda m, args: _keep(seen, "hidden", args[0]))
    ffn_out.register_forward_hook(lambda m, args, out: _keep(seen, "out", out))
    _logits(model, arch)
    with model.disable_adapter():
        plain = ffn_out(seen["hidden"])
    gated = next(iter(model.adapter_modules["adapter"].values()))
    bank, gate = gated.inner, gated.gate
    delta = torch.relu(plain @ bank.down[0] + bank.down_bias[0]) @ bank.up[0] + bank.up_bias[0]
    g = torch.sigmoid(plain @ gate.weight[0] + gate.bias[0]).mean(dim=1, keepdim=True)
    torch.testing.assert_close(seen["out"], plain + g * delta)

    if arch == "gpt2":
        return  # fused c_attn: q and v are thirds of one layer's output (covered by the LoRA tests)
    seen.clear()
    q_proj = next(iter(find_role(base, "q").values()))
    q_proj.register_forward_pre_hook(lambda m, args: _keep(seen, "x", args[0]))
    q_proj.register_forward_hook(lambda m, args, out: _keep(seen, "q", out))
    _logits(model, arch)
    with model.disable_adapter():
        plain_q = q_proj(seen["x"])
    gated = next(iter(model.adapter_modules["lora"].values()))
    lora = gated.inner.B[0] @ gated.inner.A[0] * (2.0 / 8)
    g = torch.sigmoid(seen["x"] @ gated.gate.weight[0] + gated.gate.bias[0]).mean(dim=1, keepdim=True)
    torch.testing.assert_close(seen["q"], plain_q + g * (seen["x"] @ lora.T))


def test_parameter_count_of_the_lora_and_adapter_parts_on_llama():
    d, layers, r, m = 32, 2, 8, 2  # tiny Llama: q 32 -> 32, v 32 -> 16 (2 of 4 heads' width as KV heads)
    model = get_peft_model(build("llama"), UniPELTConfig())
    lora = model.adapter_modules["lora"]
    adapter = model.adapter_modules["adapter"]
    n_lora = sum(p.numel() for p in lora.parameters())
    assert n_lora == layers * ((r * (d + 32) + d + 1) + (r * (d + 16) + d + 1))  # A, B and a Linear(d, 1) gate each
    assert sum(p.numel() for p in adapter.parameters()) == layers * ((2 * d * m + d + m) + d + 1)


def test_mixed_batch_equals_each_example_alone():
    model = get_peft_model(build("bert"), UniPELTConfig(tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3)
    mixed = _logits(model, "bert", batch, task=["c", "a", "b"])
    for row, task in enumerate(["c", "a", "b"]):
        alone = {k: v[row : row + 1] for k, v in batch.items()}
        torch.testing.assert_close(mixed[row : row + 1], _logits(model, "bert", alone, task=task))


def test_save_load_unload_and_no_merge(tmp_path):
    base = build("t5")
    reference = _logits(base, "t5")
    model = get_peft_model(base, UniPELTConfig(tasks=["a", "b"]))
    _perturb(model)
    expected = _logits(model, "t5", task="a")
    assert not torch.allclose(expected, reference)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("t5"), tmp_path, tasks=["a"])
    torch.testing.assert_close(_logits(loaded, "t5"), expected, atol=0, rtol=0)
    with pytest.raises(FoldError):
        model.merge_and_unload(task="a")
    torch.testing.assert_close(_logits(model.unload(), "t5"), reference, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("field", "value"), [("lora_rank", 0), ("lora_alpha", -1), ("lora_targets", ["ffn_in"]), ("activation", "x")]
)
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"UniPELTConfig\.{field}=.*expected"):
        UniPELTConfig(**{field: value})


@pytest.mark.parametrize("arch", ARCHS)
def test_each_layer_prefix_is_scaled_by_its_gate(arch):
    base = build(arch)
    model = get_peft_model(base, UniPELTConfig(num_virtual_tokens=3))
    _perturb(model)
    path, attention = next(_prefixed(model, base))
    seen = {}

    def record(module, args, kwargs):  # runs after the gate's pre-hook
        cache = kwargs["past_key_values"]
        cache = getattr(cache, "self_attention_cache", cache)
        _keep(seen, "keys", cache.layers[0].keys.clone())
        _keep(seen, "hidden", args[0] if args else kwargs["hidden_states"])

    attention.register_forward_pre_hook(record, with_kwargs=True)
    _logits(model, arch)
    bank = model.adapter_modules["prefix"]["prefix"]["bank"]
    gate = model.adapter_modules["prefix"]["gates"][path.replace(".", "-")]
    batch, heads, n = seen["keys"].shape[0], seen["keys"].shape[1], 3
    prefix = bank(0, batch).view(batch, n, -1, 2, heads, seen["keys"].shape[-1])  # (B, n, L, 2, H, d)
    keys = prefix[:, :, 0, 0].transpose(1, 2)  # layer 0's keys, (B, H, n, d)
    g = torch.sigmoid(seen["hidden"] @ gate.weight[0] + gate.bias[0]).mean(dim=1)  # (B, 1)
    torch.testing.assert_close(seen["keys"], keys * g[:, :, None, None])


def _prefixed(model, base):
    """(path, module) of the first attention layer that receives the prefix (T5: the decoder's)."""
    gated = model.adapter_modules["prefix"]["gates"]
    for path, module in find_role(base, "attention").items():
        if path.replace(".", "-") in gated:
            yield path, module
            return


def test_generate_runs_and_its_first_token_matches_the_forward():
    model = get_peft_model(build("gpt2"), UniPELTConfig(num_virtual_tokens=3))
    _perturb(model)
    model.eval()
    batch = text_batch(batch=2)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=3, do_sample=False, pad_token_id=0)
        first = model(**batch).logits[:, -1].argmax(-1)
    assert generated.shape == (2, batch["input_ids"].shape[1] + 3)
    torch.testing.assert_close(generated[:, batch["input_ids"].shape[1]], first)  # step 1 == the plain forward
