"""LayerNorm tuning: equal to Hugging Face peft's LNTuningConfig, zero-init deltas, exact unload, merge."""

from __future__ import annotations

import pytest
import torch
from peft.tuners.ln_tuning.layer import LNTuningLayer
from torch.nn.utils import parametrize

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.ln_tuning import LNTuningConfig
from methods import _helpers as helpers
from tiny_models import build, model_inputs, text_batch

ARCHS = ["bert", "gpt2", "llama", "t5"]


def _perturbed(name: str) -> PeftModel:
    model = get_peft_model(build(name), LNTuningConfig(modules_to_save=helpers.trained_heads(name)))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model.eval()


@pytest.mark.parametrize("name", ARCHS)
def test_equals_peft_ln_tuning(name):
    ours = _perturbed(name)
    theirs = helpers.peft_twin(ours, name).eval()
    copied = sum(isinstance(layer, LNTuningLayer) for layer in theirs.modules())
    assert copied == len(ours.adapter_modules) // (2 if name in ("bert", "gpt2") else 1)
    batch = model_inputs(name, text_batch())
    with torch.no_grad():
        torch.testing.assert_close(ours(**batch).logits, theirs(**batch).logits, atol=1e-5, rtol=1e-5)
        with ours.disable_adapter():
            assert not torch.allclose(ours(**batch).logits, theirs(**batch).logits, atol=1e-3)
    assert ours.get_nb_trainable_parameters()[0] == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", ["gpt2", "t5"])
def test_unload_restores_the_base_exactly_and_merge_folds(name, tmp_path):
    reference = build(name)
    model = _perturbed(name)
    batch = model_inputs(name, text_batch())
    with torch.no_grad():
        expected = model(**batch).logits
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build(name), tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, expected, atol=1e-6, rtol=1e-6)
    merged = loaded.merge_and_unload()
    assert not any(parametrize.is_parametrized(m) for m in merged.modules())
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=1e-5)
    base = model.unload()
    assert not any(parametrize.is_parametrized(m) for m in base.modules())
    for (n, p), (n2, p2) in zip(base.state_dict().items(), reference.state_dict().items(), strict=True):
        assert n == n2 and torch.equal(p, p2), n


def test_saved_file_holds_only_norm_deltas():
    model = get_peft_model(build("llama"), LNTuningConfig())
    names = list(model.adapter_state_dict())
    assert names and all(n.startswith("ln_tuning.") and n.endswith(".delta") for n in names)
    assert "ln_tuning.model__norm__weight.delta" in names
    norms = sum(m.weight.numel() for m in model.base_model.modules() if type(m).__name__.endswith("RMSNorm"))
    assert model.method_parameter_count() == norms


def test_roles_override_and_validation():
    model = get_peft_model(build("gpt2"), LNTuningConfig(roles={"layernorm": [r"transformer\.ln_f"]}))
    assert model.method_parameter_count() == 2 * 32
    with pytest.raises(ConfigError, match=r"LNTuningConfig\.roles"):
        LNTuningConfig(roles={"layernorm": "ln_f"})
