"""The vision half of the TinyVLM: a small ViT (:class:`VisionEncoder`) and the :class:`Projector` to the text width.

Shapes: ``pixel_values (B, 3, S, S)`` in [0, 1] -> :class:`VisionEncoder` ``(B, P, vision_width)`` (P image tokens
after ``token_pool`` pooling) -> :class:`Projector` ``(B, P, hidden)``, the image tokens put in front of the text.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import TinyVLMConfig

__all__ = ["Projector", "VisionBlock", "VisionEncoder"]

_STEM_WIDTHS = (32, 64)  # channels of the two stride-2 convolutions of the "conv" stem


class VisionBlock(nn.Module):
    """A pre-LN transformer layer (attention + 4× GELU MLP), written out so that its arithmetic is the same whether
    or not its parameters require grad (``nn.TransformerEncoderLayer`` switches to a fused kernel when frozen)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.norm2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(self.norm1(x)).view(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, width / heads)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        x = x + self.proj(attended)
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class VisionEncoder(nn.Module):
    """A small ViT: patch embedding (a convolutional stem by default) + learned positions + pre-LN transformer layers
    + LayerNorm + token pooling."""

    def __init__(self, config: TinyVLMConfig) -> None:
        super().__init__()
        self.config = config
        width = config.vision_width
        if config.stem == "conv":
            rest = config.patch_size // 4
            first, second = _STEM_WIDTHS
            self.patch_embed: nn.Module = nn.Sequential(
                nn.Conv2d(3, first, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(first, second, kernel_size=3, stride=2, padding=1),
                nn.GELU(),
                nn.Conv2d(second, width, kernel_size=rest, stride=rest),
            )
        else:
            self.patch_embed = nn.Conv2d(3, width, kernel_size=config.patch_size, stride=config.patch_size)
        self.position = nn.Parameter(torch.randn(1, config.grid**2, width) * 0.02)
        self.layers = nn.ModuleList(VisionBlock(width, config.vision_heads) for _ in range(config.vision_layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [0, 1] -> ``(B, P, vision_width)``."""
        x = self.patch_embed(pixel_values * 2.0 - 1.0)  # (B, W, g, g)
        x = x.flatten(2).transpose(1, 2) + self.position  # (B, g·g, W), row-major patch order
        for layer in self.layers:
            x = layer(x)
        x = self.norm(x)
        pool = self.config.token_pool
        if pool > 1:
            g = self.config.grid
            x = F.avg_pool2d(x.transpose(1, 2).reshape(x.shape[0], -1, g, g), pool)
            x = x.flatten(2).transpose(1, 2)
        return x


class Projector(nn.Module):
    """Linear -> GELU -> Linear (``out``) from the vision width to the text width."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.act = nn.GELU()
        self.out = nn.Linear(out_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x)))
