"""The settings that define a stage-1 VLM: what :func:`pretrain_vlm` trains and what names its cached directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...data.easyvqa import QUESTION_TYPES
from ...errors import ConfigError
from ..config import TinyVLMConfig

__all__ = ["DEFAULT_PRETRAIN", "Stage1Settings"]


@dataclass(frozen=True)
class Stage1Settings:
    """Stage 1's training settings (the defaults take about 4–5 minutes on 2 CPU cores).

    Phase a trains the vision encoder alone as an image classifier, phase b trains vision encoder, projector and head
    on VQA through the frozen text model (see :func:`adalink.vision.pretrain.pretrain_vlm`).
    """

    steps: int = 400  # phase b: optimiser steps
    batch_size: int = 32  # phase b: examples per step
    lr: float = 1e-3  # phase b: peak learning rate
    seed: int = 0  # initialisation, data order and dropout
    held_out_types: tuple[str, ...] = ("yesno-shape",)  # question types left out of training (sorted on creation)
    vision_steps: int = 300  # phase a: steps (0 skips it)
    vision_batch_size: int = 64  # phase a: images per step
    vision_lr: float = 2e-3  # phase a: peak learning rate
    config: TinyVLMConfig = field(default_factory=TinyVLMConfig)  # the architecture

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "vision_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} is invalid: expected a positive integer.")
        if not isinstance(self.vision_steps, int) or self.vision_steps < 0:
            raise ConfigError(f"vision_steps={self.vision_steps!r} is invalid: expected a non-negative integer.")
        if not (self.lr > 0 and self.vision_lr > 0):
            raise ConfigError(f"lr={self.lr!r} and vision_lr={self.vision_lr!r} must be positive numbers.")
        held = tuple(sorted(set(self.held_out_types)))
        if any(t not in QUESTION_TYPES for t in held) or len(held) == len(QUESTION_TYPES):
            raise ConfigError(
                f"held_out_types={list(self.held_out_types)!r} is invalid: expected a proper subset of "
                f"{list(QUESTION_TYPES)}."
            )
        object.__setattr__(self, "held_out_types", held)

    @classmethod
    def of(cls, base: Stage1Settings | None = None, overrides: Mapping[str, Any] | None = None) -> Stage1Settings:
        """``base`` (default: the defaults) with the fields named in ``overrides`` replaced.

        Raises:
            TypeError: If ``overrides`` names something that is not a field (the message lists the fields).
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(overrides or {}) - set(names))
        if unknown:
            raise TypeError(f"Unknown stage-1 setting(s) {unknown}: expected some of {names}.")
        return dataclasses.replace(base or cls(), **(overrides or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``held_out_types`` as a list, ``config`` as a dict."""
        return {**dataclasses.asdict(self), "held_out_types": list(self.held_out_types)}


# The defaults of Stage1Settings other than the architecture, as the dict earlier versions exposed.
DEFAULT_PRETRAIN: dict[str, Any] = {
    f.name: f.default for f in dataclasses.fields(Stage1Settings) if f.default is not dataclasses.MISSING
}
