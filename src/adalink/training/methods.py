"""The methods the training harness can apply to a base model, by name, and their default learning rates.

Every name is a registered :class:`~adalink.methods.base.MethodConfig` (``METHOD_CONFIGS``), built with the
harness's ``--rank`` and ``--dropout`` where the method has such knobs and attached through
:func:`adalink.get_peft_model`; except ``full``, which the harness trains in place on the plain model, so that its
output directory holds an ordinary ``transformers`` checkpoint (``FullConfig`` still gives its learning rate).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from .. import methods as _methods  # noqa: F401  (registers every method)
from ..methods.base import METHOD_CONFIGS
from ..peft_model import get_peft_model

__all__ = ["AttachedMethod", "attach_method", "default_lr", "method_names"]


@dataclass(frozen=True)
class AttachedMethod:
    model: nn.Module  # what is trained and called
    task_aware: bool  # forward/generate take task=
    saves_adapter: bool  # save_pretrained writes an adapter (else the whole model is saved)


def method_names() -> list[str]:
    return sorted(METHOD_CONFIGS)  # full tuning included: FullConfig is registered


def default_lr(method: str) -> float:
    """The learning rate ``adalink train --method METHOD`` uses when ``--lr`` is not given: its config's own."""
    return METHOD_CONFIGS[method].default_lr


def attach_method(
    name: str,
    base: nn.Module,
    *,
    rank: int,
    dropout: float,
    tasks: Sequence[str],
    heads: Sequence[str],
    modalities: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> AttachedMethod:
    """Apply method ``name`` to ``base``; ``heads`` are new modules that train with every method; ``options`` are
    further config fields (``--method-config``)."""
    if name == "full":
        base.requires_grad_(True)
        return AttachedMethod(base, task_aware=False, saves_adapter=False)
    if name not in METHOD_CONFIGS:
        raise ValueError(f"--method {name!r} is unknown: expected one of {method_names()}.")
    cls = METHOD_CONFIGS[name]
    extra = {"modalities": dict(modalities)} if modalities and "modalities" in cls.field_names() else {}
    extra.update(options or {})
    config = cls.for_training(rank=rank, dropout=dropout, tasks=list(tasks), heads=list(heads), **extra)
    return AttachedMethod(get_peft_model(base, config), task_aware="tasks" in cls.field_names(), saves_adapter=True)
