"""MAM adapter: the parallel FFN adapter and the prefix composed; counts, routing, save/load, unload."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.adapters import ParallelAdapterConfig
from adalink.methods.mam import MAMConfig
from adalink.methods.prefix_tuning import PrefixTuningConfig
from methods import _helpers as helpers
from tiny_models import build, text_batch


def _perturb(model: PeftModel) -> None:
    helpers.shift_adapter_weights(model, scale=0.2)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_parameters_are_the_parallel_adapter_plus_the_prefix(arch):
    def count(config):
        return get_peft_model(build(arch), config).method_parameter_count()

    mam = MAMConfig(num_virtual_tokens=4, encoder_hidden_size=16, bottleneck=6)
    adapter = ParallelAdapterConfig(bottleneck=6)
    prefix = PrefixTuningConfig(num_virtual_tokens=4, encoder_hidden_size=16)
    assert count(mam) == count(adapter) + count(prefix)
    layers = 4 if arch == "t5" else 2
    assert count(adapter) == layers * (2 * 32 * 6 + 32 + 6)  # one adapter per FFN, m = 6


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_the_ffn_gets_the_scaled_parallel_adapter_and_attention_the_prefix(arch):
    base = build(arch)
    model = get_peft_model(base, MAMConfig(num_virtual_tokens=3))
    _perturb(model)
    seen = {}
    out_proj = helpers.first_role_module(base, "ffn_out")
    helpers.record_first_call(helpers.first_role_module(base, "ffn"), seen, input_as="x")
    helpers.record_first_call(out_proj, seen, input_as="hidden", output_as="out")
    adapted = helpers.logits(model, arch)
    with model.disable_adapter():
        plain = out_proj(seen["hidden"])
        assert not torch.allclose(helpers.logits(model, arch), adapted)
    bank = next(iter(model.adapter_modules["adapter"].values()))
    torch.testing.assert_close(seen["out"], plain + 4.0 * helpers.adapter_delta(bank, seen["x"], torch.relu))
    assert model.adapter_modules["prefix"]["bank"].prefix.shape[1] == 3


def test_mixed_batch_equals_each_example_alone():
    model = get_peft_model(build("gpt2"), MAMConfig(num_virtual_tokens=3, tasks=["a", "b", "c"]))
    _perturb(model)
    helpers.assert_mixed_batch_equals_each_example_alone(model, "gpt2", text_batch(batch=3), ["c", "a", "b"])


@pytest.mark.parametrize("arch", ("bert", "t5"))
def test_save_load_unload_and_no_merge(arch, tmp_path):
    base = build(arch)
    reference = helpers.logits(base, arch)
    model = get_peft_model(base, MAMConfig(num_virtual_tokens=3, tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.logits(model, arch, task="b")
    loaded = helpers.save_and_reload(model, arch, tmp_path, tasks=["b"])
    torch.testing.assert_close(helpers.logits(loaded, arch), expected, atol=1e-6, rtol=1e-6)
    assert loaded.method_parameter_count() < model.method_parameter_count()  # the prefix MLP was dropped
    helpers.assert_merge_refused_and_unload_restores(model, arch, reference)


def test_its_size_is_the_parallel_adapters_width():
    config = MAMConfig(**{MAMConfig.size_field: 16})
    assert (config.bottleneck, config.dropout, config.num_virtual_tokens) == (16, 0.0, 30)


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_virtual_tokens", 0), ("encoder_hidden_size", -1), ("scaling", 0), ("reduction_factor", "x")],
)
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"MAMConfig\.{field}=.*expected"):
        MAMConfig(**{field: value})
