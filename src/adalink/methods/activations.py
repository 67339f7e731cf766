"""The non-linearities a method's config may name (AdaLink's f, the bottleneck adapters' f), by name."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,  # = swish, Houlsby's non-linearity in AdapterHub
    "tanh": torch.tanh,
}
