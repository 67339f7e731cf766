"""The methods the training harness can apply to a base model, by name.

Each entry freezes/attaches on the base model and says whether the result routes tasks (takes ``task=``).
The method zoo (survey §5-10) registers its methods here as they land.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from ..config import AdaLinkConfig
from ..model import get_peft_model

__all__ = ["METHODS", "AttachedMethod", "attach_method"]


@dataclass(frozen=True)
class AttachedMethod:
    model: nn.Module  # what is trained and called
    task_aware: bool  # forward/generate take task=
    saves_adapter: bool  # save_pretrained writes an adapter (else the whole model is saved)


def _adalink(
    base: nn.Module,
    *,
    rank: int,
    dropout: float,
    tasks: Sequence[str],
    heads: Sequence[str],
    modalities: Mapping[str, str] | None = None,
) -> AttachedMethod:
    extra = {"modalities": dict(modalities)} if modalities else {}  # default: text through the input embeddings
    config = AdaLinkConfig(rank=rank, dropout=dropout, tasks=list(tasks), modules_to_save=list(heads), **extra)
    return AttachedMethod(get_peft_model(base, config), task_aware=True, saves_adapter=True)


def _full(base: nn.Module, **_: object) -> AttachedMethod:
    base.requires_grad_(True)
    return AttachedMethod(base, task_aware=False, saves_adapter=False)


METHODS: dict[str, Callable[..., AttachedMethod]] = {"adalink": _adalink, "full": _full}


def attach_method(
    name: str,
    base: nn.Module,
    *,
    rank: int,
    dropout: float,
    tasks: Sequence[str],
    heads: Sequence[str],
    modalities: Mapping[str, str] | None = None,
) -> AttachedMethod:
    """Apply method ``name`` to ``base``; ``heads`` are new modules that train with every method."""
    if name not in METHODS:
        raise ValueError(f"--method {name!r} is unknown: expected one of {sorted(METHODS)}.")
    return METHODS[name](base, rank=rank, dropout=dropout, tasks=tasks, heads=heads, modalities=modalities)
