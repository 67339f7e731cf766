"""DoRA: weight-decomposed low-rank adaptation (Liu et al. 2024; survey §9.4).

The adapted weight is split into a magnitude and a direction, and LoRA updates only the direction:
``W' = m ⊙ (W + s·B A) / ‖W + s·B A‖_r`` with ``‖·‖_r`` the L2 norm of each output row, ``m`` (out,) initialised
to ``‖W‖_r`` and ``B = 0``, so training starts at the base. As the paper suggests (§4.3) and as peft does, the norm
is treated as a constant in the backward pass. The forward hook never forms ``W'``; it adds to the base output
``h = W x + b`` the difference ``(m / ‖W + s·BA‖_r − 1) ⊙ W x + (m / ‖W + s·BA‖_r) ⊙ s·B A dropout(x)``.
``merge`` writes ``W'`` into the weight (bias unchanged). One DoRA per task, routed per example: ``W'`` itself is
never needed, only the per-row ratio ``m_t / ‖W + s·B_t A_t‖_r``, so a mixed batch computes the (T, out) ratios of
all T tasks once and gathers one row per example (the norms cost one (T, out, in) product per call, T small).

GPT-2's fused ``c_attn`` is handled as in :mod:`adalink.methods.lora`: with the default targets (q, v) its q and v
thirds get one DoRA each (row norms are per output feature, so slices decompose independently).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..routing import Router, TaskIds
from .base import Attachment, Handle, register_method
from .shared.linear import LinearSite, find_linear_sites
from .shared.lora_bank import LoRABank, LoRAFields

__all__ = ["DoRAConfig", "DoRALayer"]


class DoRALayer(nn.Module):
    """Per task: a LoRA (``lora``, stacked) and the magnitude vector ``m_t`` (``magnitude``, (T, out)) of one site."""

    def __init__(self, site: LinearSite, tasks: int, rank: int, scale: float, dropout: float) -> None:
        super().__init__()
        self.lora = LoRABank(tasks, site.in_features, site.out_features, rank, scale, dropout)
        norm = site.weight().detach().float().norm(dim=1)  # (out,) = ‖W‖_r
        self.magnitude = nn.Parameter(norm.expand(tasks, -1).clone())  # (T, out)

    def ratio(self, weight: torch.Tensor, ids: TaskIds) -> torch.Tensor:
        """m_t / ‖W + s·B_t A_t‖_r, the norm detached (Liu et al. §4.3): (out,) for one task, (B, out) per example."""
        weight = weight.to(self.lora.A.dtype)
        if isinstance(ids, int):
            norm = (weight + self.lora.delta_weight(ids)).norm(dim=1).detach()
            return self.magnitude[ids] / norm
        norms = (weight + self.lora.delta_weights()).norm(dim=2).detach()  # (T, out)
        return (self.magnitude / norms)[ids]  # (B, out)

    def forward(self, x: torch.Tensor, base: torch.Tensor, weight: torch.Tensor, ids: TaskIds) -> torch.Tensor:
        """x (B, L, in), base = W x without bias (B, L, out) -> the DoRA output minus the base output."""
        ratio = self.ratio(weight, ids)
        if ratio.dim() == 2:  # (B, out) -> (B, 1, ..., out)
            ratio = ratio.reshape(ratio.shape[0], *(1,) * (base.dim() - 2), ratio.shape[1])
        return (ratio - 1) * base.to(ratio.dtype) + ratio * self.lora(x, ids)

    def merged_weight(self, weight: torch.Tensor, task: int) -> torch.Tensor:
        """m_t / ‖W + s·B_t A_t‖_r ⊙ (W + s·B_t A_t), (out, in)."""
        adapted = weight.to(self.lora.A.dtype) + self.lora.delta_weight(task)
        return self.ratio(weight, task)[:, None] * adapted


def _hook(site: LinearSite, layer: DoRALayer, router: Router) -> Callable[..., torch.Tensor | None]:
    end = site.start + site.out_features
    where = f"the dora layer {site.path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        x = args[0]
        base = output[..., site.start : end]  # (B, L, out) = W x + b
        bias = site.bias()
        if bias is not None:
            base = base - bias
        ids = router.ids_for(x.shape[0] if x.dim() >= 2 else 1, where)
        return output + site.pad(layer(x, base, site.weight(), ids).to(output.dtype))

    return hook


@register_method
@dataclass
class DoRAConfig(LoRAFields):
    """DoRA on the attention query and value projections by default (the same fields and targets as ``lora``)."""

    method: ClassVar[str] = "dora"
    display_name: ClassVar[str] = "DoRA"
    mergeable: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3  # as LoRA (survey §11.1 sweep); Liu et al. use LoRA's learning rates
    source: ClassVar[str] = "Liu et al. 2024 (DoRA) §4; survey §9.4"

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        sites = find_linear_sites(model, self.targets, self.roles, method=self.method)
        scale, tasks = self.alpha / self.rank, len(self.tasks)
        by_key = {s.key: DoRALayer(s, tasks, self.rank, scale, self.dropout) for s in sites}
        layers = nn.ModuleDict(by_key)
        handles: list[Handle] = [s.module.register_forward_hook(_hook(s, by_key[s.key], router)) for s in sites]

        def merge(task: int) -> None:
            with torch.no_grad():
                for s in sites:
                    weight = s.weight()
                    weight.copy_(layers[s.key].merged_weight(weight, task).to(weight.dtype))

        touched = {s.path: s.module for s in sites}
        return Attachment(layers, handles, touched, merge=merge)
