"""BitFit: only bias terms train (as zero-init deltas), merge folds them, bias-less models are refused clearly."""

from __future__ import annotations

import pytest
import torch

from adalink import ConfigError, PeftModel, get_peft_model
from adalink.methods.bitfit import BitFitConfig
from tiny_models import build, model_inputs, text_batch


@pytest.mark.parametrize(("name", "model_class"), [("llama", "LlamaForCausalLM"), ("t5", "T5ForConditionalGeneration")])
def test_bias_less_models_are_refused_with_the_reason(name, model_class):
    with pytest.raises(ConfigError, match=f"{model_class}.*no bias parameters"):
        get_peft_model(build(name), BitFitConfig())


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_trains_exactly_the_biases(name):
    base = build(name)
    biases = {n: p.numel() for n, p in base.named_parameters() if n.endswith(".bias")}
    model = get_peft_model(base, BitFitConfig())
    assert model.method_parameter_count() == sum(biases.values())
    assert model.get_nb_trainable_parameters()[0] == sum(biases.values())
    batch = model_inputs(name, text_batch())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(**batch).logits.square().mean().backward()
    optimizer.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all(n.startswith("bitfit.") for n in moved)


def test_heads_to_save_are_not_doubled():
    model = get_peft_model(build("bert"), BitFitConfig(modules_to_save=["classifier"]))
    assert "bitfit.classifier__bias.delta" not in model.adapter_state_dict()
    assert "modules_to_save.classifier.bias" in model.adapter_state_dict()


def test_save_load_merge(tmp_path):
    model = get_peft_model(build("gpt2"), BitFitConfig()).eval()
    with torch.no_grad():
        for p in model.adapter_modules.parameters():
            p.normal_(0, 0.2)
    batch = text_batch()
    with torch.no_grad():
        expected = model(**batch).logits
        with model.disable_adapter():
            assert not torch.allclose(model(**batch).logits, expected, atol=1e-3)
    model.save_pretrained(tmp_path)
    loaded = PeftModel.from_pretrained(build("gpt2"), tmp_path)
    merged = loaded.merge_and_unload()
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=1e-5)
