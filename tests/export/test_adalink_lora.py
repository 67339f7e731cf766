"""AdaLink as a peft LoRA: the lookup-only embedding LoRA (tied heads untouched), encoder-decoder sides, an image
projector's Linear with lora_bias, and the settings that cannot be exported exactly."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import LlamaForCausalLM

from adalink import AdaLinkConfig, get_peft_model
from adalink.export import ExportError, export_peft, peft_adapter
from export import _helpers as helpers
from tiny_models import IMAGE_TOKEN, IMAGE_TOKENS_PER_IMAGE, VOCAB, build, tiny_llava

PROJECTOR = "model.multi_modal_projector"


def test_lora_factors_are_the_link_on_the_table():
    ours = helpers.perturb(get_peft_model(build("llama"), AdaLinkConfig(rank=3, dropout=0.2)))
    adapter = peft_adapter(ours)
    a = adapter.tensors["base_model.model.model.embed_tokens.lora_embedding_A"]
    b = adapter.tensors["base_model.model.model.embed_tokens.lora_embedding_B"]
    bank, table = ours.adalink["text"], ours.base_model.model.embed_tokens.weight
    assert a.shape == (3, VOCAB) and b.shape == (32, 3)
    torch.testing.assert_close(a.T @ b.T, table @ bank.down[0] @ bank.up[0], atol=1e-5, rtol=1e-5)
    expected = {"r": 3, "lora_alpha": 3, "lora_dropout": 0.2, "target_modules": ["model.embed_tokens"]}
    assert {k: adapter.config[k] for k in expected} == expected and adapter.config["task_type"] == "CAUSAL_LM"


def test_gpt2_tied_head_stays_on_the_original_table(tmp_path):
    ours = helpers.perturb(get_peft_model(build("gpt2"), AdaLinkConfig(rank=4)))
    theirs = helpers.load_in_peft("gpt2", export_peft(ours, tmp_path))
    helpers.assert_same_outputs(ours, theirs, "gpt2")
    original = build("gpt2").lm_head.weight
    head = theirs.get_base_model().lm_head
    assert torch.equal(head.weight, original) and head.weight is theirs.get_base_model().transformer.wte.weight
    hidden = torch.randn(2, 3, 32)
    torch.testing.assert_close(head(hidden), hidden @ original.T)  # the head's logits are unchanged


@pytest.mark.parametrize(
    ("sides", "targets"),
    [
        ("encoder", ["encoder.embed_tokens"]),
        ("decoder", ["decoder.embed_tokens"]),
        ("both", ["encoder.embed_tokens", "decoder.embed_tokens"]),
    ],
)
def test_t5_sides_map_to_each_sides_embedding_module(sides, targets, tmp_path):
    ours = helpers.perturb(get_peft_model(build("t5"), AdaLinkConfig(rank=4, sides=sides)))
    (directory,) = export_peft(ours, tmp_path)
    assert json.loads((directory / "adapter_config.json").read_text())["target_modules"] == targets
    helpers.assert_same_outputs(ours, helpers.load_in_peft("t5", [directory]), "t5")


def test_non_identity_activation_is_refused(tmp_path):
    ours = get_peft_model(build("bert"), AdaLinkConfig(activation="gelu"))
    with pytest.raises(ExportError, match=r"activation='gelu'.*identity activation"):
        export_peft(ours, tmp_path)


# ------------------------------------------------------------------------------------------ image projector
def _llava(modalities: dict[str, str]):
    torch.manual_seed(0)
    model = get_peft_model(tiny_llava().eval(), AdaLinkConfig(rank=4, modalities=modalities))
    return helpers.perturb(model)


def _llava_inputs() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, VOCAB, (2, 10), generator=generator)
    ids[:, 2 : 2 + IMAGE_TOKENS_PER_IMAGE] = IMAGE_TOKEN
    return {"input_ids": ids, "pixel_values": torch.randn(2, 3, 16, 16, generator=generator)}


def test_image_projector_linear_is_a_lora_with_lora_bias(tmp_path):
    ours = _llava({"image": f"{PROJECTOR}.linear_2"})
    directories = export_peft(ours, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["lora_bias"] is True
    torch.manual_seed(0)
    theirs = helpers.load_in_peft("llava", directories, base=tiny_llava().eval())
    inputs = _llava_inputs()
    with torch.no_grad():
        expected = ours(**inputs).logits
        with ours.disable_adapter():
            assert not torch.allclose(ours(**inputs).logits, expected, atol=1e-3)
        torch.testing.assert_close(theirs(**inputs).logits, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("modalities", "match"),
    [
        ({"image": PROJECTOR}, r"LlavaMultiModalProjector.*'model\.multi_modal_projector\.linear_2'"),
        ({"text": "input_embeddings", "image": f"{PROJECTOR}.linear_2"}, r"lora_bias on embedding layers"),
    ],
)
def test_image_modality_peft_cannot_hold_is_refused(modalities, match, tmp_path):
    with pytest.raises(ExportError, match=match):
        export_peft(_llava(modalities), tmp_path)


# ------------------------------------------------------------------------------------------ output link
def _llama(tied: bool):
    config = build("llama").config
    config.tie_word_embeddings = tied
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


def test_output_link_is_a_lora_on_the_head():
    ours = helpers.perturb(get_peft_model(_llama(tied=False), AdaLinkConfig(rank=3, boundaries=["output"])))
    adapter = peft_adapter(ours)
    a = adapter.tensors["base_model.model.lm_head.lora_A.weight"]
    b = adapter.tensors["base_model.model.lm_head.lora_B.weight"]
    bank, head = ours.adalink["output"], ours.base_model.lm_head.weight
    assert a.shape == (3, 32) and b.shape == (VOCAB, 3)
    torch.testing.assert_close((b @ a).T, bank.down[0] @ bank.up[0] @ head.T, atol=1e-5, rtol=1e-5)  # ΔWᵀ = M·Wᵀ
    assert adapter.config["target_modules"] == ["lm_head"] and adapter.config["lora_alpha"] == 3


@pytest.mark.parametrize("tied", [False, True])
def test_both_links_give_peft_the_same_logits_tied_or_not(tied, tmp_path):
    ours = helpers.perturb(get_peft_model(_llama(tied), AdaLinkConfig(rank=4, boundaries=["input", "output"])))
    (directory,) = export_peft(ours, tmp_path)
    assert json.loads((directory / "adapter_config.json").read_text())["target_modules"] == [
        "model.embed_tokens",
        "lm_head",
    ]
    theirs = helpers.load_in_peft("llama", [directory], base=_llama(tied))
    helpers.assert_same_outputs(ours, theirs, "llama")
    base = theirs.get_base_model()
    if tied:  # peft wrapped the head on its own: the table it shares is the original
        assert base.lm_head.base_layer.weight is base.model.embed_tokens.base_layer.weight
        assert torch.equal(base.lm_head.base_layer.weight, _llama(tied).lm_head.weight)


def test_gpt2_tied_output_link_in_peft(tmp_path):
    ours = helpers.perturb(get_peft_model(build("gpt2"), AdaLinkConfig(rank=4, boundaries=["input", "output"])))
    helpers.assert_same_outputs(ours, helpers.load_in_peft("gpt2", export_peft(ours, tmp_path)), "gpt2")


def test_projector_lora_bias_gives_the_head_a_zero_bias(tmp_path):
    torch.manual_seed(0)
    config = AdaLinkConfig(rank=4, modalities={"image": f"{PROJECTOR}.linear_2"}, boundaries=["input", "output"])
    ours = helpers.perturb(get_peft_model(tiny_llava().eval(), config))
    adapter = peft_adapter(ours)
    assert adapter.config["lora_bias"] is True
    assert torch.equal(adapter.tensors["base_model.model.lm_head.lora_B.bias"], torch.zeros(VOCAB))
    torch.manual_seed(0)
    theirs = helpers.load_in_peft("llava", export_peft(ours, tmp_path), base=tiny_llava().eval())
    inputs = _llava_inputs()
    with torch.no_grad():
        torch.testing.assert_close(theirs(**inputs).logits, ours(**inputs).logits, atol=1e-5, rtol=1e-5)
