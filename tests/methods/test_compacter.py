"""Compacter / Compacter++: Kronecker products against torch.kron, exact counts, identity, routing, save/load."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.compacter import CompacterConfig, CompacterPlusPlusConfig, LowRankPHM, kronecker_matmul
from methods import _helpers as helpers
from tiny_models import build, text_batch

CONFIGS = {"compacter": CompacterConfig, "compacter_pp": CompacterPlusPlusConfig}
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


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_parameter_counts_follow_the_formula(arch):
    layers, d, m, n = LAYERS[arch], 32, 4, 4  # m = 32/32 = 1, rounded up to a multiple of n
    compacter = get_peft_model(build(arch), CompacterConfig())
    assert compacter.method_parameter_count() == layers * 2 * _per_adapter(d, m) + n**3
    plus = get_peft_model(build(arch), CompacterPlusPlusConfig(phm_rank=2, bottleneck=8, tasks=["a", "b"]))
    assert plus.method_parameter_count() == 2 * (layers * _per_adapter(d, 8, r=2) + n**3)


@pytest.mark.parametrize(("config", "millions"), [(CompacterConfig(), 0.30), (CompacterPlusPlusConfig(), 0.15)])
def test_t5_large_counts_match_survey_table_5(config, millions):
    assert helpers.t5_large_method_millions(config) == millions


def _perturb(model: PeftModel) -> None:
    helpers.shift_adapter_weights(model, scale=0.3)


@pytest.mark.parametrize("method", sorted(CONFIGS))
@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_identity_at_init_is_exact(method, arch):
    helpers.assert_identity_at_init(CONFIGS[method](), arch)


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
    helpers.assert_mixed_batch_equals_each_example_alone(model, "t5", batch, ["c", "a", "b"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_save_load_unload_and_no_merge(method, tmp_path):
    base = build("llama")
    reference = helpers.logits(base, "llama")
    model = get_peft_model(base, CONFIGS[method](tasks=["a", "b"]))
    _perturb(model)
    expected = helpers.logits(model, "llama", task="b")
    assert not torch.allclose(expected, reference)
    loaded = helpers.save_and_reload(model, "llama", tmp_path, tasks=["b"])
    torch.testing.assert_close(helpers.logits(loaded, "llama"), expected, atol=0, rtol=0)
    helpers.assert_merge_refused_and_unload_restores(model, "llama", reference)


def test_phm_dim_must_divide_the_hidden_size():
    with pytest.raises(ConfigError, match=r"phm_dim=5 .*divisor of its width 32"):
        get_peft_model(build("bert"), CompacterConfig(phm_dim=5))


@pytest.mark.parametrize(("field", "value"), [("phm_dim", 0), ("phm_rank", 1.5), ("rule_init_std", -1.0)])
def test_validation_names_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=rf"CompacterConfig\.{field}=.*expected"):
        CompacterConfig(**{field: value})
