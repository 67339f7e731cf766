"""The architecture of the TinyVLM (:class:`TinyVLMConfig`) and the pretrained text model it is built around."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import nn

from ..errors import ConfigError

__all__ = ["POOLINGS", "STEMS", "TinyVLMConfig", "load_text_model", "resolve_text_model_path"]

POOLINGS: tuple[str, ...] = ("cls", "mean")
STEMS: tuple[str, ...] = ("conv", "linear")


@dataclass
class TinyVLMConfig:
    """Architecture of :class:`TinyVLM` (stored in ``config.json``).

    Attributes:
        image_size: Side of the square input image in pixels.
        patch_size: Side of a ViT patch; ``image_size`` must be a multiple of it.
        vision_width: Width of the vision transformer.
        vision_layers: Number of vision transformer layers.
        vision_heads: Attention heads per vision layer (must divide ``vision_width``).
        stem: The patch embedding: ``"conv"`` (two stride-2 3×3 convolutions with GELU, then a linear patchify of
            the remaining ``patch_size / 4`` side: the "early convolutions" ViT stem, which learns shapes several
            times faster from scratch) or ``"linear"`` (one ``patch_size`` convolution, the plain ViT patchify).
        token_pool: The patch grid is average-pooled in ``token_pool``×``token_pool`` windows before the projector
            (1 = no pooling); the number of image tokens is ``(image_size / patch_size / token_pool) ** 2``.
        num_answers: Size of the answer head.
        text_model: ``"minilm"`` (the packaged all-MiniLM-L6-v2) or a local BERT-like ``save_pretrained`` directory.
        pooling: ``"mean"`` (default: mean over all attended image and text positions) or ``"cls"`` (the first text
            token, [CLS]). With the frozen MiniLM, mean pooling learned the "what" questions clearly faster in stage 1
            (all-MiniLM-L6-v2 was itself trained with mean pooling).
        head_dropout: Dropout on the pooled vector before the head.
        head_hidden: 0 (default): the head is one Linear; else a Linear -> GELU -> Linear MLP of this hidden width.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    token_pool: int = 2
    stem: str = "conv"
    num_answers: int = 13
    text_model: str = "minilm"
    pooling: str = "mean"
    head_dropout: float = 0.1
    head_hidden: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, saved as is

    model_type: ClassVar[str] = "adalink_tiny_vlm"  # read by adalink's fingerprint; unknown to transformers' registry
    is_encoder_decoder: ClassVar[bool] = False

    def __post_init__(self) -> None:
        checks = [
            ("image_size", self.image_size > 0, "a positive integer"),
            ("patch_size", self.patch_size > 0 and self.image_size % self.patch_size == 0, "a divisor of image_size"),
            ("vision_width", self.vision_width > 0, "a positive integer"),
            ("vision_layers", self.vision_layers >= 0, "a non-negative integer"),
            (
                "vision_heads",
                self.vision_heads > 0 and self.vision_width % self.vision_heads == 0,
                "a positive divisor of vision_width",
            ),
            (
                "token_pool",
                self.token_pool > 0 and self.grid % self.token_pool == 0 if self.patch_size > 0 else False,
                "a positive divisor of image_size // patch_size",
            ),
            (
                "stem",
                self.stem == "linear" or (self.stem == "conv" and self.patch_size % 4 == 0),
                "'linear', or 'conv' with a patch_size divisible by 4",
            ),
            ("num_answers", self.num_answers > 0, "a positive integer"),
            ("pooling", self.pooling in POOLINGS, f"one of {list(POOLINGS)}"),
            ("head_dropout", 0 <= self.head_dropout < 1, "a number in [0, 1)"),
            ("head_hidden", self.head_hidden >= 0, "a non-negative integer"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"TinyVLMConfig.{name}={getattr(self, name)!r} is invalid: expected {expected}.")

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def num_image_tokens(self) -> int:
        """P, the number of image tokens put in front of the text."""
        return (self.grid // self.token_pool) ** 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> TinyVLMConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(document) - names)
        if unknown:
            raise ConfigError(f"Unknown TinyVLMConfig field(s) {unknown}; expected some of {sorted(names)}.")
        return cls(**document)


# ---------------------------------------------------------------------------------------------------- text model


def resolve_text_model_path(spec: str) -> str:
    """Directory of the text model: ``"minilm"`` through :func:`adalink.models.resolve_model`, else ``spec``."""
    from ..models import resolve_model

    return resolve_model(spec).path


def load_text_model(spec: str) -> nn.Module:
    """The pretrained BERT-like encoder without its pooler (unused here)."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(resolve_text_model_path(spec))
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # BertModel skips a None pooler; dropping it keeps unused parameters out of training
    return model
