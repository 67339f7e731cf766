"""DoRA: weight-decomposed low-rank adaptation (Liu et al. 2024; survey §9.4).

The adapted weight is split into a magnitude and a direction, and LoRA updates only the direction:
``W' = m ⊙ (W + s·B A) / ‖W + s·B A‖_r`` with ``‖·‖_r`` the L2 norm of each output row, ``m`` (out,) initialised
to ``‖W‖_r`` and ``B = 0``, so training starts at the base. As the paper suggests (§4.3) and as peft does, the norm
is treated as a constant in the backward pass. The forward hook never forms ``W'``; it adds to the base output
``h = W x + b`` the difference ``(m / ‖W + s·BA‖_r − 1) ⊙ W x + (m / ‖W + s·BA‖_r) ⊙ s·B A dropout(x)``.
``merge`` writes ``W'`` into the weight (bias unchanged). One adapter (no per-task routing): the norm depends on
the task's whole ``B A``, so a mixed batch would need one adapted weight per example.

GPT-2's fused ``c_attn`` is handled as in :mod:`adalink.methods.lora`: with the default targets (q, v) its q and v
thirds get one DoRA each (row norms are per output feature, so slices decompose independently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..routing import Router
from .base import Attachment, MethodConfig, register_method
from .lora import LinearSite, LoRABank, check_lora_fields, find_linear_sites

__all__ = ["DoRAConfig", "DoRALayer"]


class DoRALayer(nn.Module):
    """A LoRA (``lora``) plus the magnitude vector ``m`` (out,) of one linear site."""

    def __init__(self, site: LinearSite, rank: int, scale: float, dropout: float) -> None:
        super().__init__()
        self.lora = LoRABank(1, site.in_features, site.out_features, rank, scale, dropout)
        self.magnitude = nn.Parameter(site.weight().detach().float().norm(dim=1))  # (out,) = ‖W‖_r

    def ratio(self, weight: torch.Tensor) -> torch.Tensor:
        """m / ‖W + s·BA‖_r, (out,), the norm detached (Liu et al. §4.3)."""
        norm = (weight.to(self.lora.A.dtype) + self.lora.delta_weight(0)).norm(dim=1).detach()
        return self.magnitude / norm

    def forward(self, x: torch.Tensor, base: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """x (B, L, in), base = W x without bias (B, L, out) -> the DoRA output minus the base output."""
        ratio = self.ratio(weight)  # (out,)
        return (ratio - 1) * base.to(ratio.dtype) + ratio * self.lora(x, 0)

    def merged_weight(self, weight: torch.Tensor) -> torch.Tensor:
        """m / ‖W + s·BA‖_r ⊙ (W + s·BA), (out, in)."""
        return self.ratio(weight)[:, None] * (weight.to(self.lora.A.dtype) + self.lora.delta_weight(0))


def _hook(site: LinearSite, layer: DoRALayer, router: Router):
    end = site.start + site.out_features

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        base = output[..., site.start : end]  # (B, L, out) = W x + b
        bias = site.bias()
        if bias is not None:
            base = base - bias
        return output + site.pad(layer(args[0], base, site.weight()).to(output.dtype))

    return hook


@register_method
@dataclass
class DoRAConfig(MethodConfig):
    """DoRA on the attention query and value projections by default (the same targets as ``lora``)."""

    method: ClassVar[str] = "dora"
    mergeable: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3  # as LoRA (survey §11.1 sweep); Liu et al. use LoRA's learning rates
    source: ClassVar[str] = "Liu et al. 2024 (DoRA) §4; survey §9.4"

    rank: int = 8  # r of the directional LoRA update (as `lora`)
    alpha: float = 16.0  # α; the LoRA update is scaled by α / r
    dropout: float = 0.0  # on the LoRA input during training
    targets: list[str] = field(default_factory=lambda: ["q", "v"])  # roles adapted (see adalink.methods.roles)
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module names/regexes (unknown architectures)

    def validate(self) -> None:
        check_lora_fields(self)

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        sites = find_linear_sites(model, self.targets, self.roles, method=self.method)
        layers = nn.ModuleDict({s.key: DoRALayer(s, self.rank, self.alpha / self.rank, self.dropout) for s in sites})
        handles = [s.module.register_forward_hook(_hook(s, layers[s.key], router)) for s in sites]

        def merge(task: int) -> None:
            with torch.no_grad():
                for s in sites:
                    weight = s.weight()
                    weight.copy_(layers[s.key].merged_weight(weight).to(weight.dtype))

        return Attachment(layers, handles, {s.path: s.module for s in sites}, merge=merge)
