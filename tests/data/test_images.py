"""Reading images as float tensors (easy-VQA's images; skipped where ``easy-vqa`` or Pillow is not installed)."""

import sys

import pytest
import torch

from adalink.data import images
from adalink.data.images import load_image, load_images


@pytest.fixture(scope="module")
def paths() -> list[str]:
    """16 easy-VQA image paths (64×64 RGB PNGs)."""
    pytest.importorskip("easy_vqa", reason="pip install easy-vqa")
    pytest.importorskip("PIL", reason="pip install pillow")
    from adalink.data import load_easyvqa

    return [example.image_path for example in load_easyvqa().validation[:16]]


def test_missing_pillow_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match="pip install pillow"):
        images._decode.__wrapped__("/nonexistent.png")


def test_load_image_shape_dtype_range(paths):
    image = load_image(paths[0])
    assert image.shape == (3, 64, 64)
    assert image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    assert image.max() > image.min()  # a shape on a background, not a blank image


def test_load_image_resizes(paths):
    path = paths[0]
    for size in (32, 224):
        resized = load_image(path, size=size)
        assert resized.shape == (3, size, size)
        assert resized.min() >= 0.0 and resized.max() <= 1.0
    assert torch.equal(load_image(path, size=64), load_image(path))
    with pytest.raises(ValueError, match="size"):
        load_image(path, size=0)


def test_load_images_stacks_and_returns_fresh_tensors(paths):
    batch = load_images(paths)
    assert batch.shape == (16, 3, 64, 64) and batch.dtype == torch.float32
    assert torch.equal(batch, torch.stack([load_image(path) for path in paths]))
    assert load_images(paths, size=96).shape == (16, 3, 96, 96)
    assert load_images([]).shape == (0, 3, 64, 64)
    assert load_images([], size=32).shape == (0, 3, 32, 32)
    batch.zero_()  # modifying a result must not reach the decode cache
    assert torch.equal(load_images(paths[:1]), load_image(paths[0]).unsqueeze(0))
    assert load_image(paths[0]).max() > 0
