"""Per-modality AdaLinks on a LLaVA-style model: image tokens adapted before fusion, positions untouched."""

import pytest
import torch

from adalink import AdaLinkConfig, PeftModel, get_peft_model
from tiny_models import IMAGE_TOKEN, IMAGE_TOKENS_PER_IMAGE, VOCAB, perturb_adalink, tiny_llava

PROJECTOR = "model.multi_modal_projector"
BOTH = {"text": "input_embeddings", "image": PROJECTOR}


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(5, VOCAB, (batch, 10), generator=generator)
    ids[:, 2 : 2 + IMAGE_TOKENS_PER_IMAGE] = IMAGE_TOKEN
    return {"input_ids": ids, "pixel_values": torch.randn(batch, 3, 16, 16, generator=generator)}


def _model(**config) -> PeftModel:
    torch.manual_seed(0)
    return get_peft_model(tiny_llava().eval(), AdaLinkConfig(rank=4, **config)).eval()


def _language_model_inputs(model: PeftModel, **kwargs) -> torch.Tensor:
    """The fused sequence that enters the frozen transformer blocks."""
    captured = {}

    def grab(module, args, kw):
        captured["embeds"] = kw["inputs_embeds"].detach().clone()

    handle = model.base_model.model.language_model.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        model(**kwargs)
    finally:
        handle.remove()
    return captured["embeds"]


@pytest.mark.parametrize(
    ("modalities", "changed"), [({"image": PROJECTOR}, "image"), ({"text": "input_embeddings"}, "text")]
)
def test_each_modality_changes_only_its_own_positions(modalities, changed):
    model = _model(modalities=modalities)
    inputs = _inputs()
    with model.disable_adapter():
        before = _language_model_inputs(model, **inputs)
    perturb_adalink(model)
    after = _language_model_inputs(model, **inputs)
    is_image = inputs["input_ids"] == IMAGE_TOKEN
    moved = (after - before).abs().amax(-1) > 0
    assert after.shape == before.shape, "the sequence length (and so every position) must be preserved"
    assert torch.equal(moved, is_image if changed == "image" else ~is_image)


def test_modality_specific_and_unified_have_the_same_budget_at_twice_the_rank():
    separate = _model(modalities=BOTH)
    unified = get_peft_model(tiny_llava(), AdaLinkConfig(rank=8, modalities=BOTH, unified=True))
    assert sorted(separate.adalink) == ["image", "text"] and list(unified.adalink) == ["unified"]
    assert separate.get_nb_trainable_parameters()[0] == unified.get_nb_trainable_parameters()[0] == 2 * 2 * 32 * 4


def test_unified_applies_one_adalink_to_both_modalities():
    model = get_peft_model(tiny_llava().eval(), AdaLinkConfig(rank=4, modalities=BOTH, unified=True)).eval()
    inputs = _inputs()
    with model.disable_adapter():
        before = _language_model_inputs(model, **inputs)
    perturb_adalink(model)
    assert ((_language_model_inputs(model, **inputs) - before).abs().amax(-1) > 0).all()


def test_mixed_tasks_with_images_equal_each_example_alone():
    model = _model(modalities=BOTH, tasks=["vqa", "caption"])
    perturb_adalink(model)
    inputs = _inputs(batch=3)
    tasks = ["caption", "vqa", "caption"]
    mixed = model(**inputs, task=tasks).logits
    for i, task in enumerate(tasks):
        alone = model(**{k: v[i : i + 1] for k, v in inputs.items()}, task=task).logits
        torch.testing.assert_close(mixed[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_generate_with_images_beams_and_mixed_tasks():
    model = _model(modalities=BOTH, tasks=["vqa", "caption"])
    perturb_adalink(model, scale=2.0)
    inputs = _inputs(batch=2)
    kwargs = {"max_new_tokens": 4, "min_new_tokens": 4, "num_beams": 2}
    out = model.generate(**inputs, task=["caption", "vqa"], **kwargs)
    for i, task in enumerate(["caption", "vqa"]):
        alone = model.generate(**{k: v[i : i + 1] for k, v in inputs.items()}, task=task, **kwargs)
        assert torch.equal(out[i : i + 1], alone)


def test_per_example_tasks_need_one_image_per_example():
    model = _model(modalities={"image": PROJECTOR}, tasks=["vqa", "caption"])
    inputs = _inputs(batch=2)
    inputs["input_ids"][1, 2 : 2 + IMAGE_TOKENS_PER_IMAGE] = 7  # the second example has no image
    inputs["pixel_values"] = inputs["pixel_values"][:1]
    with pytest.raises(ValueError, match=r"one row \(e\.g\. one image\) per example"):
        model(**inputs, task=["vqa", "caption"])
    model(**inputs, task="vqa")  # one task for the whole batch needs no such mapping


def test_save_and_load_multimodal(tmp_path):
    model = _model(modalities=BOTH, tasks=["vqa", "caption"])
    perturb_adalink(model)
    model.save_pretrained(tmp_path)
    torch.manual_seed(0)
    loaded = PeftModel.from_pretrained(tiny_llava().eval(), tmp_path)
    inputs = _inputs()
    assert torch.equal(loaded(**inputs, task="vqa").logits, model(**inputs, task="vqa").logits)
