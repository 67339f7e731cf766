"""KronA: the Kronecker-vector product against torch.kron, equal to peft's LoKr, routing, merge, save/load."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.lokr.layer import factorization as peft_factorization

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.krona import KronABank, KronAConfig, factorization
from adalink.methods.shared.linear import LinearSite
from methods import _helpers as helpers
from tiny_models import build, text_batch


def _perturb(model: PeftModel) -> None:
    helpers.redraw_adapter_weights(model, scale=0.3)


@pytest.mark.parametrize(("in_features", "out_features", "factor"), [(32, 32, -1), (24, 96, -1), (48, 12, 4)])
def test_kronecker_vector_product_equals_explicit_kron(in_features, out_features, factor):
    layer = torch.nn.Linear(in_features, out_features)
    site = LinearSite("x", layer, in_features, out_features, 0, out_features, False)
    bank = KronABank(3, site, factor, scale=0.7, dropout=0.0)
    with torch.no_grad():
        bank.A.normal_()
    x = torch.randn(3, 5, in_features)
    for task in range(3):
        explicit = x @ (torch.kron(bank.A[task], bank.B[task]) * 0.7).t()
        torch.testing.assert_close(bank(x, task), explicit, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(bank.delta_weight(task), torch.kron(bank.A[task], bank.B[task]) * 0.7)
    ids = torch.tensor([2, 0, 1])
    per_example = torch.stack([x[i] @ torch.kron(bank.A[t], bank.B[t]).t() * 0.7 for i, t in enumerate(ids.tolist())])
    torch.testing.assert_close(bank(x, ids), per_example, atol=1e-5, rtol=1e-5)


def test_factorization_is_lokrs():
    for dim in (1, 7, 32, 384, 1024, 1536, 4096):
        for factor in (-1, 2, 4, 8):
            assert factorization(dim, factor) == peft_factorization(dim, factor)


@pytest.mark.parametrize("arch", ["bert", "llama", "t5"])  # peft's LoKr has no GPT-2 Conv1D layer
def test_equals_peft_lokr(arch):
    ours = get_peft_model(build(arch), KronAConfig(scale=0.5, modules_to_save=helpers.trained_heads(arch)))
    _perturb(ours)
    # full (undecomposed) w1 and w2: r reaches half the larger factor; alpha / r is KronA's scale
    helpers.assert_equals_peft(ours, helpers.peft_twin(ours, arch), arch)


@pytest.mark.parametrize("arch", helpers.ARCHS)
def test_routing_merge_save_load_unload(arch, tmp_path):
    base = build(arch)
    state = {k: v.clone() for k, v in base.state_dict().items()}
    model = get_peft_model(base, KronAConfig(tasks=["a", "b", "c"]))
    torch.testing.assert_close(
        helpers.small_batch_logits(model, arch, task="a"),
        helpers.small_batch_logits(build(arch), arch),
        atol=1e-6,
        rtol=1e-6,
    )
    _perturb(model)
    batch = text_batch(batch=3, length=6)
    helpers.assert_mixed_batch_equals_each_example_alone(model, arch, batch, ["c", "a", "b"], atol=1e-5, rtol=1e-5)
    expected = helpers.small_batch_logits(model, arch, task="b")
    loaded = helpers.save_and_reload(model, arch, tmp_path)
    torch.testing.assert_close(helpers.small_batch_logits(loaded, arch, task="b"), expected, atol=1e-6, rtol=1e-6)
    merged = loaded.merge_and_unload(task="b")
    torch.testing.assert_close(helpers.small_batch_logits(merged, arch), expected, atol=1e-5, rtol=1e-5)
    restored = model.unload()
    assert all(torch.equal(state[k], v) for k, v in restored.state_dict().items())


def test_gpt2_krona_adapts_only_the_q_and_v_thirds():
    model = get_peft_model(build("gpt2"), KronAConfig())
    _perturb(model)
    adapted, plain = helpers.gpt2_c_attn_outputs(model)
    q, k, v = (adapted - plain).split(32, dim=-1)
    assert q.abs().max() > 0 and v.abs().max() > 0 and torch.equal(k, torch.zeros_like(k))
    # (4·4 + 8·8) per third: 32 = 4 · 8 both ways
    assert model.method_parameter_count() == 2 * 2 * (4 * 4 + 8 * 8)


@pytest.mark.parametrize(
    ("kwargs", "field"), [({"factor": 0}, "factor"), ({"scale": 0.0}, "scale"), ({"targets": ["x"]}, "targets")]
)
def test_invalid_fields_are_named(kwargs, field):
    with pytest.raises(ConfigError, match=rf"KronAConfig\.{field}="):
        KronAConfig(**kwargs)
