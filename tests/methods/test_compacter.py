"""Compacter / Compacter++: Kronecker products against torch.kron, exact counts, identity, routing, save/load."""

from __future__ import annotations

import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from adalink import ConfigError, FoldError, PeftModel, get_peft_model
from adalink.methods.compacter import CompacterConfig, CompacterPlusPlusConfig, LowRankPHM, kronecker_matmul
from tiny_models import build, model_inputs, text_batch

CONFIGS = {"compacter": CompacterConfig, "compacter_pp": CompacterPlusPlusConfig}
ARCHS = ("bert", "gpt2", "llama", "t5")
LAYERS = {"bert": 2, "gpt2": 2, "llama": 2, "t5": 4}


def _explicit(rule: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Σ_i A_i ⊗ (s_i t_iᵀ) built with torch.kron: the dense matrix the forward pass never forms."""
    return sum(torch.kron(rule[i], left[i] @ right[i]) for i in range(rule.shape[0]))


@pytest.mark.parametrize(("n", "k", "l", "r"), [(4, 32, 8, 1), (2, 6, 10, 3), (3, 9, 9, 2)])
def test_kronecker_matmul_equals_torch_kron(n, k, l, r):  # noqa: E741
    generator = torch.Generator().manual_seed(0)
    rule = torch.randn(2, n, n, n, generator=generator, dtype=torch.float64)
    left = torch.randn(2, n, k // n, r, generator=generator, dtype=torch.float64)
    right = torch.randn(2, n, r, l // n, generator=generator, dtype=torch.float64)
    x = torch.randn(3, 5, k, generator=generator, dtype=torch.float64)
    one = kronecker_matmul(x, rule[1:], left[1:], right[1:], groups=1)
    torch.testing.assert_close(one, x @ _explicit(rule[1], left[1], right[1]))
    ids = torch.tensor([1, 0, 1])  # one weight set per example
    mixed = kronecker_matmul(x, rule[ids], left[ids], right[ids], groups=3)
    for row, task in enumerate(ids.tolist()):
        torch.testing.assert_close(mixed[row], x[row] @ _explicit(rule[task], left[task], right[task]))


def test_phm_layer_matches_its_dense_matrix_and_starts_at_zero_when_asked():
    torch.manual_seed(0)
    layer = LowRankPHM(2, 4, 16, 8, 2, zero=False)
    rule = torch.randn(2, 4, 4, 4)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 3, 16)
    torch.testing.assert_close(layer(x, rule, 1), x @ layer.dense(rule, 1) + layer.bias[1])
    torch.testing.assert_close(layer.dense(rule, 0), _explicit(rule[0], layer.left[0], layer.right[0]))
    assert not LowRankPHM(1, 4, 16, 8, 1, zero=True).dense(rule, 0).any()


def _per_adapter(d: int, m: int, r: int = 1) -> int:
    return 2 * r * (d + m) + d + m  # s_i, t_i of both projections + both biases (survey §10.4)


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_follow_the_formula(arch):
    layers, d, m, n = LAYERS[arch], 32, 4, 4  # m = 32/32 = 1, rounded up to a multiple of n
    compacter = get_peft_model(build(arch), CompacterConfig())
    assert compacter.method_parameter_count() == layers * 2 * _per_adapter(d, m) + n**3
    plus = get_peft_model(build(arch), CompacterPlusPlusConfig(phm_rank=2, bottleneck=8, tasks=["a", "b"]))
    assert plus.method_parameter_count() == 2 * (layers * _per_adapter(d, 8, r=2) + n**3)


@pytest.mark.parametrize(("config", "millions"), [(CompacterConfig(), 0.30), (CompacterPlusPlusConfig(), 0.15)])
def test_t5_large_counts_match_survey_table_5(config, millions):
    t5_large = T5Config(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24, vocab_size=32128)
    with torch.device("meta"):
        model = get_peft_model(T5ForConditionalGeneration(t5_large), config)
    assert round(model.method_parameter_count() / 1e6, 2) == millions


def _perturb(model: PeftModel) -> None:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.3)


def _logits(model, arch: str, batch=None, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return model(**model_inputs(arch, batch or text_batch()), **kwargs).logits


@pytest.mark.parametrize("method", sorted(CONFIGS))
@pytest.mark.parametrize("arch", ARCHS)
def test_identity_at_init_is_exact(method, arch):
    reference = _logits(build(arch), arch)
    model = get_peft_model(build(arch), CONFIGS[method]())
    torch.testing.assert_close(_logits(model, arch), reference, atol=0, rtol=0)


def test_the_rule_is_shared_by_every_adapter_and_learns_from_all():
    model = get_peft_model(build("bert"), CompacterConfig())
    _perturb(model)
    rule = model.adapter_modules.rule
    assert [n for n, _ in model.adapter_modules.named_parameters() if "rule" in n] == ["rule"]
    model(**text_batch()).logits.sum().backward()
    assert rule.grad is not None and rule.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.adapter_modules.parameters())


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_mixed_batch_equals_each_example_alone(method):
    model = get_peft_model(build("t5"), CONFIGS[method](tasks=["a", "b", "c"]))
    _perturb(model)
    batch = text_batch(batch=3)
    mixed = _logits(model, "t5", batch, task=["c", "a", "b"])
    for row, task in enumerate(["c", "a", "b"]):
        alone = {k: v[row : row + 1] for k, v in batch.items()}
        torch.testing.assert_close(mixed[row : row + 1], _logits(model, "t5", alone, task=task), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_save_load_unload_and_no_merge(method, tmp_path):
    base = build("llama")
    reference = _logits(base, "llama")
    model = get_peft_model(base, CONFIGS[method](tasks=["a", "b"]))
    _perturb(model)
    expected = _logits(model, "llama", task="b")
    assert not torch.allclose(expected, reference)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("llama"), tmp_path, tasks=["b"])
    torch.testing.assert_close(_logits(loaded, "llama"), expected, atol=0, rtol=0)
    with pytest.raises(FoldError):
        model.merge_and_unload(task="a")
    torch.testing.assert_close(_logits(model.unload(), "llama"), reference, atol=0, rtol=0)


def test_phm_dim_must_divide_the_hidden_size():
    with pytest.raises(ConfigError, match=r"phm_dim=5 .*divisor of its width 32"):
        get_peft_model(build("bert"), CompacterConfig(phm_dim=5))


@pytest.mark.parametrize(("field", "value"), [("phm_dim", 0), ("phm_rank", 1.5), ("rule_init_std", -1.0)])
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"CompacterConfig\.{field}=.*expected"):
        CompacterConfig(**{field: value})
