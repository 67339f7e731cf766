"""merge_and_unload folds an identity-activation AdaLink into the vocabulary table (paper §3.3)."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from adalink import AdaLinkBank, AdaLinkConfig, FoldError, UnknownTaskError, get_peft_model
from tiny_models import build, model_inputs, perturb_adalink, text_batch, tiny_llava

AUTO = {"bert": AutoModelForSequenceClassification, "gpt2": AutoModelForCausalLM, "llama": AutoModelForCausalLM}
AUTO["t5"] = AutoModelForSeq2SeqLM


def _trained(name: str, **config):
    base = build(name)
    model = get_peft_model(base, AdaLinkConfig(rank=4, tasks=["a", "b"], **config)).eval()
    perturb_adalink(model)
    return base, model


def test_folded_model_equals_adalink_model_and_reloads_without_adalink(text_model_name, tmp_path):
    base, model = _trained(text_model_name)
    head = base.get_output_embeddings()
    head_before = None if head is None else head.weight.detach().clone()
    batch = model_inputs(text_model_name, text_batch())
    expected = model(**batch, task="b").logits
    merged = model.merge_and_unload(task="b")
    assert merged is base
    assert not any(isinstance(m, AdaLinkBank) for m in merged.modules()), "AdaLink modules left behind"
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in merged.modules()), "hooks left behind"
    torch.testing.assert_close(merged(**batch).logits, expected, atol=1e-5, rtol=0)
    if head is not None:  # a tied output head must keep the original table
        assert torch.equal(merged.get_output_embeddings().weight, head_before)

    merged.save_pretrained(tmp_path)  # a plain transformers checkpoint
    reloaded = AUTO[text_model_name].from_pretrained(tmp_path).eval()
    torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-5, rtol=0)


def test_encoder_only_fold_leaves_the_decoder_and_head_alone():
    base, model = _trained("t5")
    shared_before = base.shared.weight.detach().clone()
    merged = model.merge_and_unload(task="a")
    assert torch.equal(merged.get_decoder().get_input_embeddings().weight, shared_before)
    assert torch.equal(merged.lm_head.weight, shared_before)
    assert not torch.equal(merged.get_encoder().get_input_embeddings().weight, shared_before)


def test_both_sides_fold_equals_adalink():
    _, model = _trained("t5", sides="both")
    batch = model_inputs("t5", text_batch())
    expected = model(**batch, task="a").logits
    torch.testing.assert_close(model.merge_and_unload(task="a")(**batch).logits, expected, atol=1e-5, rtol=0)


def test_fold_into_a_linear_projector():
    torch.manual_seed(0)
    base = tiny_llava().eval()
    config = AdaLinkConfig(rank=4, modalities={"image": "model.multi_modal_projector.linear_2"})
    model = get_peft_model(base, config).eval()
    perturb_adalink(model)
    ids = torch.randint(5, 90, (2, 8))
    ids[:, 1:5] = 3
    pixels = torch.randn(2, 3, 16, 16)
    expected = model(input_ids=ids, pixel_values=pixels).logits
    merged = model.merge_and_unload()
    torch.testing.assert_close(merged(input_ids=ids, pixel_values=pixels).logits, expected, atol=1e-5, rtol=0)


def test_non_linear_activation_cannot_fold():
    _, model = _trained("gpt2", activation="gelu")
    with pytest.raises(FoldError, match="activation='gelu'"):
        model.merge_and_unload(task="a")


def test_module_that_is_not_a_lookup_or_linear_cannot_fold_and_stays_attached():
    model = get_peft_model(tiny_llava(), AdaLinkConfig(modalities={"image": "model.multi_modal_projector"}))
    with pytest.raises(FoldError, match="LlavaMultiModalProjector"):
        model.merge_and_unload()
    assert model._attachment.handles, "a refused fold must leave the adapter attached"


def test_multi_task_fold_needs_a_task():
    _, model = _trained("gpt2")
    with pytest.raises(UnknownTaskError, match=r"task= one of \['a', 'b'\]"):
        model.merge_and_unload()
