"""MAM adapter: the parallel FFN adapter and the prefix composed; counts, routing, save/load, unload."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, FoldError, PeftModel, get_peft_model
from adalink.methods.adapters import ParallelAdapterConfig
from adalink.methods.mam import MAMConfig
from adalink.methods.prefix_tuning import PrefixTuningConfig
from adalink.methods.roles import find_role
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


@pytest.mark.parametrize("arch", ARCHS)
def test_parameters_are_the_parallel_adapter_plus_the_prefix(arch):
    def count(config):
        return get_peft_model(build(arch), config).method_parameter_count()

    mam = MAMConfig(num_virtual_tokens=4, encoder_hidden_size=16, bottleneck=6)
    adapter = ParallelAdapterConfig(bottleneck=6)
    prefix = PrefixTuningConfig(num_virtual_tokens=4, encoder_hidden_size=16)
    assert count(mam) == count(adapter) + count(prefix)
    layers = 4 if arch == "t5" else 2
    assert count(adapter) == layers * (2 * 32 * 6 + 32 + 6)  # one adapter per FFN, m = 6


@pytest.mark.parametrize("arch", ARCHS)
def test_the_ffn_gets_the_scaled_parallel_adapter_and_attention_the_prefix(arch):
    base = build(arch)
    model = get_peft_model(base, MAMConfig(num_virtual_tokens=3))
    _perturb(model)
    seen = {}
    ffn, out_proj = next(iter(find_role(base, "ffn").values())), next(iter(find_role(base, "ffn_out").values()))
    ffn.register_forward_pre_hook(lambda m, args: _keep(seen, "x", args[0]))
    out_proj.register_forward_pre_hook(lambda m, args: _keep(seen, "hidden", args[0]))
    out_proj.register_forward_hook(lambda m, args, out: _keep(seen, "out", out))
    adapted = _logits(model, arch)
    with model.disable_adapter():
        plain = out_proj(seen["hidden"])
        assert not torch.allclose(_logits(model, arch), adapted)
    bank = next(iter(model.adapter_modules["adapter"].values()))
    delta = torch.relu(seen["x"] @ bank.down[0] + bank.down_bias[0]) @ bank.up[0] + bank.up_bias[0]
    torch.testing.assert_close(seen["out"], plain + 4.0 * delta)
    assert model.adapter_modules["prefix"]["bank"].prefix.shape[1] == 3


def test_mixed_batch_equals_each_example_alone():
    model = get_peft_model(build("gpt2"), MAMConfig(num_virtual_tokens=3, tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3)
    mixed = _logits(model, "gpt2", batch, task=["c", "a", "b"])
    for row, task in enumerate(["c", "a", "b"]):
        alone = {k: v[row : row + 1] for k, v in batch.items()}
        torch.testing.assert_close(mixed[row : row + 1], _logits(model, "gpt2", alone, task=task))


@pytest.mark.parametrize("arch", ("bert", "t5"))
def test_save_load_unload_and_no_merge(arch, tmp_path):
    base = build(arch)
    reference = _logits(base, arch)
    model = get_peft_model(base, MAMConfig(num_virtual_tokens=3, tasks=["a", "b"]))
    _perturb(model)
    expected = _logits(model, arch, task="b")
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build(arch), tmp_path, tasks=["b"])
    torch.testing.assert_close(_logits(loaded, arch), expected, atol=1e-6, rtol=1e-6)
    assert loaded.method_parameter_count() < model.method_parameter_count()  # the prefix MLP was dropped
    with pytest.raises(FoldError):
        model.merge_and_unload(task="a")
    torch.testing.assert_close(_logits(model.unload(), arch), reference, atol=0, rtol=0)


def test_for_training_maps_rank_to_the_adapter_width():
    config = MAMConfig.for_training(rank=16, dropout=0.1, tasks=["t"], heads=[])
    assert (config.bottleneck, config.dropout, config.num_virtual_tokens) == (16, 0.1, 30)


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_virtual_tokens", 0), ("encoder_hidden_size", -1), ("scaling", 0), ("reduction_factor", "x")],
)
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"MAMConfig\.{field}=.*expected"):
        MAMConfig(**{field: value})
