"""Images as RGB float tensors: each file decoded once per process (uint8, at most 16,384 kept), converted to float
in [0, 1] and optionally resized on every call. Reading needs Pillow (``pip install pillow``), imported only when the
first image is decoded. Used for easy-VQA (:mod:`adalink.data.easyvqa`), whose images are 64×64 PNGs. torch is
imported on the first call, not with :mod:`adalink.data`: ``adalink train`` checks task names before torch loads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import MissingPackageError, UsageError

if TYPE_CHECKING:
    import torch

__all__ = ["load_image", "load_images"]

_NATIVE_SIZE = 64  # the side of an easy-VQA image, and of the empty batch load_images([]) returns
_IMAGE_CACHE_SIZE = 16_384


@functools.lru_cache(maxsize=_IMAGE_CACHE_SIZE)
def _decode(path: str) -> torch.Tensor:
    """Decode an image file to a ``(3, H, W)`` uint8 RGB tensor (cached; callers must not modify it)."""
    import torch

    try:
        from PIL import Image
    except ImportError as error:
        raise MissingPackageError("Reading easy-VQA images needs Pillow: `pip install pillow`.") from error
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        width, height = rgb.size
        data = bytearray(rgb.tobytes())
    return torch.frombuffer(data, dtype=torch.uint8).view(height, width, 3).permute(2, 0, 1).contiguous()


def _to_float(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Scale uint8 ``(N, 3, H, W)`` images to float32 in [0, 1], resized bilinearly to ``size``×``size`` if given."""
    import torch
    import torch.nn.functional as F

    floats = images.to(torch.float32).div_(255.0)
    if size is not None and tuple(floats.shape[-2:]) != (size, size):
        shrinking = size < min(floats.shape[-2:])  # antialiasing only matters, and only costs, when downsampling
        floats = F.interpolate(floats, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)
        floats = floats.clamp_(0.0, 1.0)
    return floats


def _check_size(size: int | None) -> None:
    if size is not None and size < 1:
        raise UsageError(f"size must be a positive number of pixels or None, got {size}.")


def load_image(path: str, size: int | None = None) -> torch.Tensor:
    """Read one image as an RGB float tensor.

    Args:
        path: Image file path (e.g. ``VQAExample.image_path``).
        size: If given, the image is resized to ``size``×``size`` (bilinear, antialiased when shrinking); ``None``
            keeps the native 64×64.

    Returns:
        A new ``(3, H, W)`` float32 tensor with values in [0, 1].

    Raises:
        ImportError: If Pillow is not installed.
        ValueError: If ``size`` is not positive.
    """
    _check_size(size)
    return _to_float(_decode(os.fspath(path)).unsqueeze(0), size)[0]


def load_images(paths: Sequence[str], size: int | None = None) -> torch.Tensor:
    """Read a batch of images as one RGB float tensor (each file is decoded once per process and cached).

    Args:
        paths: Image file paths; with ``size=None`` the images must all have the same size.
        size: As in :func:`load_image`.

    Returns:
        A new ``(N, 3, H, W)`` float32 tensor with values in [0, 1]; ``(0, 3, S, S)`` for no paths, with ``S`` being
        ``size`` or 64.

    Raises:
        ImportError: If Pillow is not installed.
        ValueError: If ``size`` is not positive, or if ``size`` is ``None`` and the images differ in size.
    """
    import torch

    _check_size(size)
    if not paths:
        side = size or _NATIVE_SIZE
        return torch.empty(0, 3, side, side)
    decoded = [_decode(os.fspath(path)) for path in paths]
    shapes = {tuple(image.shape) for image in decoded}
    if len(shapes) == 1:
        return _to_float(torch.stack(decoded), size)
    if size is None:
        raise UsageError(f"Images differ in size ({sorted(shapes)}); pass size= to resize them to one size.")
    return torch.cat([_to_float(image.unsqueeze(0), size) for image in decoded])
