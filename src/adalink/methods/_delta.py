"""Additive, zero-initialised deltas on existing base tensors through ``torch.nn.utils.parametrize``.

Shared by LayerNorm tuning and BitFit: both train a subset of the base model's own tensors. Instead of unfreezing
them, each chosen tensor ``W`` is re-parametrised as ``W + Δ`` with ``Δ = 0`` at init, so the base weights never change,
the adapter file holds only ``Δ``, unloading restores the base exactly, and merging writes ``W + Δ`` into ``W``
(``leave_parametrized=True``). The model's code is never edited (minLoRA's mechanism).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..routing import Router
from .base import Attachment, Handle, Undo

__all__ = ["AdditiveDelta", "attach_deltas"]


class AdditiveDelta(nn.Module):
    """A zero-initialised ``Δ`` of one base tensor's shape (the adapter's saved parameter)."""

    def __init__(self, like: torch.Tensor) -> None:
        super().__init__()
        self.delta = nn.Parameter(torch.zeros_like(like, requires_grad=True))


class _AddDelta(nn.Module):
    """The parametrisation ``W ↦ W + Δ``; a no-op while routing is off. ``Δ`` stays registered on the adapter only
    (a plain attribute here), so the base model's own parameter list gains nothing."""

    def __init__(self, delta: AdditiveDelta, router: Router) -> None:
        super().__init__()
        object.__setattr__(self, "_delta", delta)
        self._router = router

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self._router.disabled:
            return weight
        return weight + self._delta.delta


def attach_deltas(targets: dict[str, tuple[nn.Module, str]], router: Router) -> Attachment:
    """Re-parametrise every ``(module, tensor name)`` of ``targets`` (keyed by dotted path of the tensor) as
    ``W + Δ``. The returned attachment saves the deltas under their tensor paths (dots as ``__``) and merges
    by writing ``W + Δ`` into ``W``."""
    deltas = nn.ModuleDict()
    handles: list[Handle] = []
    orders = {id(module): list(module._parameters) for module, _ in targets.values()}  # before any change
    for path, (module, name) in targets.items():
        delta = AdditiveDelta(getattr(module, name))
        parametrize.register_parametrization(module, name, _AddDelta(delta, router))
        deltas[path.replace(".", "__")] = delta
        handles.append(Undo(_remover(module, name, orders[id(module)], leave_parametrized=False)))

    def merge(task: int) -> None:
        del task  # single-task methods
        for module, name in targets.values():
            _remover(module, name, orders[id(module)], leave_parametrized=True)()

    touched = {path.rpartition(".")[0]: module for path, (module, _) in targets.items()}
    return Attachment(deltas, handles, touched, merge=merge)


def _remover(module: nn.Module, name: str, order: list[str], *, leave_parametrized: bool) -> Callable[[], None]:
    """Undo one parametrisation; ``order`` is the module's parameter order before any (removal appends)."""

    def remove() -> None:
        if parametrize.is_parametrized(module, name):  # merge may have removed it already
            with torch.no_grad():
                parametrize.remove_parametrizations(module, name, leave_parametrized=leave_parametrized)
            current = dict(module._parameters)
            module._parameters.clear()
            module._parameters.update({k: current.pop(k) for k in order if k in current} | current)

    return remove
