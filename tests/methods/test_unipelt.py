"""UniPELT: gates, gated LoRA and gated adapter against their formulas, counts, routing, save/load, unload."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods._cache import find_cache
from adalink.methods.roles import find_role
from adalink.methods.unipelt import TaskGate, UniPELTConfig
from methods import _helpers as helpers
from tiny_models import build, text_batch


def _perturb(model: PeftModel) -> None:
    helpers.shift_adapter_weights(model, scale=0.2)


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


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_gated_adapter_and_gated_lora_follow_the_formulas(arch):
    base = build(arch)
    model = get_peft_model(base, UniPELTConfig())
    _perturb(model)
    seen = {}
    ffn_out = helpers.first_role_module(base, "ffn_out")
    helpers.record_first_call(ffn_out, seen, input_as="hidden", output_as="out")
    helpers.logits(model, arch)
    with model.disable_adapter():
        plain = ffn_out(seen["hidden"])
    gated = next(iter(model.adapter_modules["adapter"].values()))
    delta, gate = helpers.adapter_delta(gated.inner, plain, torch.relu), gated.gate
    g = torch.sigmoid(plain @ gate.weight[0] + gate.bias[0]).mean(dim=1, keepdim=True)
    torch.testing.assert_close(seen["out"], plain + g * delta)

    if arch == "gpt2":
        return  # fused c_attn: q and v are thirds of one layer's output (covered by the LoRA tests)
    seen.clear()
    q_proj = helpers.first_role_module(base, "q")
    helpers.record_first_call(q_proj, seen, input_as="x", output_as="q")
    helpers.logits(model, arch)
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
    helpers.assert_mixed_batch_equals_each_example_alone(model, "bert", text_batch(batch=3), ["c", "a", "b"])


def test_save_load_unload_and_no_merge(tmp_path):
    base = build("t5")
    reference = helpers.logits(base, "t5")
    model = get_peft_model(base, UniPELTConfig(tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.logits(model, "t5", task="a")
    assert not torch.allclose(expected, reference)
    loaded = helpers.save_and_reload(model, "t5", tmp_path, tasks=["a"])
    # The file holds the prefix MLP's output, computed once; the live model recomputes it for every batch: equal up to
    # float32 rounding (measured 1e-6), not bit for bit.
    torch.testing.assert_close(helpers.logits(loaded, "t5"), expected, atol=1e-5, rtol=1e-5)
    helpers.assert_merge_refused_and_unload_restores(model, "t5", reference)


@pytest.mark.parametrize(
    ("field", "value"), [("lora_rank", 0), ("lora_alpha", -1), ("lora_targets", ["ffn_in"]), ("activation", "x")]
)
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"UniPELTConfig\.{field}=.*expected"):
        UniPELTConfig(**{field: value})


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_each_layer_prefix_is_scaled_by_its_gate(arch):
    base = build(arch)
    model = get_peft_model(base, UniPELTConfig(num_virtual_tokens=3))
    _perturb(model)
    path, attention = next(_prefixed(model, base))
    seen = {}

    def record(module, args, kwargs):  # runs after the gate's pre-hook
        cache = find_cache(kwargs)
        cache = getattr(cache, "self_attention_cache", cache)
        helpers.keep_first(seen, "keys", cache.layers[0].keys.clone())
        helpers.keep_first(seen, "hidden", args[0] if args else kwargs["hidden_states"])

    attention.register_forward_pre_hook(record, with_kwargs=True)
    helpers.logits(model, arch)
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
