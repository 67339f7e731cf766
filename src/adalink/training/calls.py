"""How the harness calls a model: ``task=`` passed only to task-aware methods, batches moved to the model's device.

The formats take such a call (:data:`adalink.training.formats.ModelCall`), so one format serves every method.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["routed_call", "routed_generate", "to_device"]


def routed_call(model: torch.nn.Module, task_aware: bool) -> Callable[..., Any]:
    """``call(inputs, task_ids, **kwargs)``: the model's forward, routed per example when it is task-aware."""

    def call(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any) -> Any:
        return model(**inputs, task=task_ids, **kwargs) if task_aware else model(**inputs, **kwargs)

    return call


def routed_generate(model: torch.nn.Module, task_aware: bool) -> Callable[..., Any]:
    """``generate(inputs, task_ids, **kwargs)``: as :func:`routed_call`, for ``model.generate``."""

    def generate(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any) -> Any:
        return model.generate(**inputs, task=task_ids, **kwargs) if task_aware else model.generate(**inputs, **kwargs)

    return generate


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}
