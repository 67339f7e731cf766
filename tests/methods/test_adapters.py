"""Houlsby, Pfeiffer and scaled Parallel adapters: placement, exact counts, identity, routing, unload, save/load."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, FoldError, PeftModel, get_peft_model
from adalink.methods.adapters import HoulsbyConfig, ParallelAdapterConfig, PfeifferConfig
from methods import _helpers as helpers
from tiny_models import build, text_batch

CONFIGS = {"houlsby": HoulsbyConfig, "pfeiffer": PfeifferConfig, "parallel": ParallelAdapterConfig}
D = 32  # hidden size of every tiny model
LAYERS = {"bert": 2, "gpt2": 2, "llama": 2, "t5": 4}  # T5: 2 encoder + 2 decoder blocks


def _adapter(d: int, m: int) -> int:
    return 2 * d * m + d + m  # W_down, W_up and both biases (survey §5.1)


def _perturb(model: PeftModel) -> None:
    helpers.shift_adapter_weights(model, scale=0.2)


@pytest.mark.parametrize("method", sorted(CONFIGS))
@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_identity_at_init_is_exact(method, arch):
    helpers.assert_identity_at_init(CONFIGS[method](), arch)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_parameter_counts_follow_the_survey_formula(arch):
    layers = LAYERS[arch]
    houlsby = get_peft_model(build(arch), HoulsbyConfig())
    assert houlsby.method_parameter_count() == layers * 2 * _adapter(D, D // 16)
    pfeiffer = get_peft_model(build(arch), PfeifferConfig())
    assert pfeiffer.method_parameter_count() == layers * _adapter(D, D // 16)
    parallel = get_peft_model(build(arch), ParallelAdapterConfig())
    assert parallel.method_parameter_count() == layers * _adapter(D, D // 2)
    wide = get_peft_model(build(arch), HoulsbyConfig(bottleneck=5, tasks=["a", "b", "c"]))
    assert wide.method_parameter_count() == 3 * layers * 2 * _adapter(D, 5)


def test_t5_cross_attention_adapters_are_opt_in():
    plain = get_peft_model(build("t5"), HoulsbyConfig())
    crossed = get_peft_model(build("t5"), HoulsbyConfig(cross_attention=True))
    assert crossed.method_parameter_count() - plain.method_parameter_count() == 2 * _adapter(D, 2)  # 2 decoder blocks
    assert not any("EncDecAttention" in key for key in plain.adapter_modules)


@pytest.mark.parametrize(
    ("config", "expected_millions"),
    [(HoulsbyConfig(), 12.69), (PfeifferConfig(), 6.34), (ParallelAdapterConfig(), 50.41)],
)
def test_t5_large_counts_match_survey_table_5(config, expected_millions):
    assert helpers.t5_large_method_millions(config) == expected_millions


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_houlsby_adds_the_adapter_on_the_sublayer_output(arch):
    base = build(arch)
    model = get_peft_model(base, HoulsbyConfig())
    _perturb(model)
    seen = {}
    o_proj = helpers.first_role_module(base, "o")
    helpers.record_first_call(o_proj, seen, input_as="in", output_as="out")
    helpers.logits(model, arch)
    with model.disable_adapter():
        plain = o_proj(seen["in"])
    bank = next(iter(model.adapter_modules.values()))
    torch.testing.assert_close(seen["out"], plain + helpers.adapter_delta(bank, plain, torch.nn.functional.silu))


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_parallel_adapter_reads_the_ffn_input(arch):
    base = build(arch)
    model = get_peft_model(base, ParallelAdapterConfig())
    _perturb(model)
    seen = {}
    out_proj = helpers.first_role_module(base, "ffn_out")
    helpers.record_first_call(helpers.first_role_module(base, "ffn"), seen, input_as="x")
    helpers.record_first_call(out_proj, seen, input_as="hidden", output_as="out")
    helpers.logits(model, arch)
    with model.disable_adapter():
        plain = out_proj(seen["hidden"])
    bank = next(iter(model.adapter_modules.values()))
    torch.testing.assert_close(seen["out"], plain + 4.0 * helpers.adapter_delta(bank, seen["x"], torch.relu))


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_mixed_batch_equals_each_example_alone(method):
    model = get_peft_model(build("llama"), CONFIGS[method](tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3)
    mixed = helpers.assert_mixed_batch_equals_each_example_alone(model, "llama", batch, ["c", "a", "b"])
    assert not torch.allclose(
        mixed[0], helpers.logits(model, "llama", {k: v[:1] for k, v in batch.items()}, task="a")[0]
    )


@pytest.mark.parametrize("method", sorted(CONFIGS))
@pytest.mark.parametrize("arch", ("bert", "t5"))
def test_unload_restores_the_base_and_merge_is_refused(method, arch):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    reference = helpers.logits(base, arch)
    model = get_peft_model(base, CONFIGS[method]())
    _perturb(model)
    assert not torch.equal(helpers.logits(model, arch), reference)
    with pytest.raises(FoldError):
        model.merge_and_unload()
    restored = model.unload()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in restored.modules())
    assert all(torch.equal(v, state[k]) for k, v in restored.state_dict().items())
    torch.testing.assert_close(helpers.logits(restored, arch), reference, atol=0, rtol=0)


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_save_load_gives_equal_outputs_and_a_task_subset(method, tmp_path):
    model = get_peft_model(build("gpt2"), CONFIGS[method](tasks=["a", "b"], bottleneck=3))
    _perturb(model)
    expected = helpers.logits(model, "gpt2", task="b")
    loaded = helpers.save_and_reload(model, "gpt2", tmp_path)
    torch.testing.assert_close(helpers.logits(loaded, "gpt2", task="b"), expected, atol=0, rtol=0)
    only_b = PeftModel.from_pretrained(build("gpt2"), tmp_path, tasks=["b"])
    torch.testing.assert_close(helpers.logits(only_b, "gpt2"), expected, atol=0, rtol=0)


def test_its_size_is_the_bottleneck_width_and_defaults_to_d_over_the_reduction_factor():
    config = HoulsbyConfig(**{HoulsbyConfig.size_field: 24})
    assert config.width(384) == 24 and HoulsbyConfig().bottleneck is None
    assert HoulsbyConfig().width(384) == 24 and ParallelAdapterConfig().width(384) == 192


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (HoulsbyConfig, "reduction_factor", 0),
        (HoulsbyConfig, "bottleneck", -2),
        (PfeifferConfig, "activation", "swiglu"),
        (PfeifferConfig, "dropout", 1.5),
        (ParallelAdapterConfig, "scaling", -1.0),
        (HoulsbyConfig, "roles", {"o": "x"}),
    ],
)
def test_validation_names_the_field_and_value(cls, field, value):
    with pytest.raises(ConfigError, match=rf"{cls.__name__}\.{field}=.*expected"):
        cls(**{field: value})


def test_user_roles_reach_an_unknown_architecture():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(8, 8)

        def forward(self, x):
            return x + self.proj(x)

    net = torch.nn.Sequential(Block(), Block())
    with pytest.raises(ConfigError, match="ffn_out"):
        get_peft_model(net, PfeifferConfig())
    model = get_peft_model(net, PfeifferConfig(roles={"ffn_out": [r"\d+\.proj"]}, bottleneck=2))
    assert model.method_parameter_count() == 2 * _adapter(8, 2)
