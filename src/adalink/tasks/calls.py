"""How the harness calls a model: ``task=`` passed to an adalink :class:`~adalink.PeftModel` (every method's; those
without tasks ignore it), not to a plain model (a merged checkpoint, peft's own model); batches moved to the model's
device.

The formats take such a call (:data:`adalink.tasks.formats.ModelCall`), so one format serves every model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..peft_model import PeftModel

__all__ = ["model_call", "model_generate", "to_device"]


def model_call(model: torch.nn.Module) -> Callable[..., Any]:
    """``call(inputs, task_ids, **kwargs)``: the model's forward, routed per example."""
    routed = _takes_task(model)

    def call(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any) -> Any:
        return model(**inputs, task=task_ids, **kwargs) if routed else model(**inputs, **kwargs)

    return call


def model_generate(model: torch.nn.Module) -> Callable[..., Any]:
    """``generate(inputs, task_ids, **kwargs)``: as :func:`model_call`, for ``model.generate``."""
    routed = _takes_task(model)

    def generate(inputs: dict[str, torch.Tensor], task_ids: torch.Tensor, **kwargs: Any) -> Any:
        return model.generate(**inputs, task=task_ids, **kwargs) if routed else model.generate(**inputs, **kwargs)

    return generate


def _takes_task(model: torch.nn.Module) -> bool:
    """An adalink PeftModel, or a process wrapper of one (DDP and FSDP keep it as ``.module``)."""
    inner: object = model
    while not isinstance(inner, PeftModel) and isinstance(getattr(inner, "module", None), torch.nn.Module):
        inner = getattr(inner, "module")  # noqa: B009  (typed as object: a wrapper's attribute)
    return isinstance(inner, PeftModel)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}
