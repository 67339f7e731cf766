"""The stacked per-task LoRA bank and the fields LoRA and DoRA share (Hu et al. 2022; survey §9.2).

:class:`LoRABank` holds one ``ΔW_t = (α / r) · B_t A_t`` per task for one linear site; :func:`attach_lora` gives
every site one behind a forward hook (:mod:`.linear`); :class:`LoRAFields` are the knobs of LoRA and DoRA. UniPELT
gates the same bank.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ...routing import Router, TaskIds
from ..base import Attachment, MethodConfig
from .linear import LinearSite, attach_banks, check_targets

__all__ = ["LoRABank", "LoRAFields", "attach_lora"]


class LoRABank(nn.Module):
    """One LoRA per task for one linear site: ``ΔW_t = scale · B_t A_t`` (Hu et al. 2022, Eq. 3).

    Args:
        tasks: Number of tasks T.
        in_features: Input width of the site.
        out_features: Output width of the site.
        rank: r.
        scale: α / r.
        dropout: Dropout on the LoRA input (training only).
    """

    def __init__(
        self, tasks: int, in_features: int, out_features: int, rank: int, scale: float, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.scale = scale
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.A = nn.Parameter(torch.empty(tasks, rank, in_features))  # (T, r, in), as peft's lora_A.weight
        self.B = nn.Parameter(torch.zeros(tasks, out_features, rank))  # (T, out, r), zeros: start at the base
        for a in self.A:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # nn.Linear's default, as in Hu et al.'s code and peft

    def forward(self, x: torch.Tensor, ids: TaskIds) -> torch.Tensor:
        """x (B, ..., in) -> scale · B A dropout(x), (B, ..., out)."""
        x = self.dropout(x.to(self.A.dtype))
        if isinstance(ids, int):  # one task for the batch: two plain matmuls
            return (x @ self.A[ids].transpose(0, 1)) @ self.B[ids].transpose(0, 1) * self.scale
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, L, in)
        hidden = torch.bmm(flat, self.A[ids].transpose(1, 2))  # (B, L, r)
        out = torch.bmm(hidden, self.B[ids].transpose(1, 2))  # (B, L, out)
        return out.reshape(*x.shape[:-1], out.shape[-1]) * self.scale

    def delta_weight(self, task: int) -> torch.Tensor:
        """scale · B_t A_t, (out, in)."""
        return self.B[task] @ self.A[task] * self.scale

    def delta_weights(self) -> torch.Tensor:
        """scale · B_t A_t of every task, (T, out, in)."""
        return torch.bmm(self.B, self.A) * self.scale


def attach_lora(
    sites: Sequence[LinearSite],
    router: Router,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    tasks: int,
    method: str = "lora",
) -> Attachment:
    """Give every site a :class:`LoRABank` behind a forward hook; merge folds one task into the weights."""
    banks = nn.ModuleDict(
        {s.key: LoRABank(tasks, s.in_features, s.out_features, rank, alpha / rank, dropout) for s in sites}
    )
    return attach_banks(sites, banks, router, method)


@dataclass
class LoRAFields(MethodConfig):
    """The fields LoRA and DoRA share (DoRA is LoRA's update with a learned magnitude, so it has the same knobs)."""

    size_field: ClassVar[str | None] = "rank"

    rank: int = 8  # r; survey Table 5 counts (2.36M on T5-Large for q, v) are r = 8
    alpha: float = 16.0  # α; the update is scaled by α / r (Hu et al. §4.1); 2r, a common choice
    dropout: float = 0.0  # on the LoRA input during training (peft's default; Hu et al. used 0.1 on GPT-2)
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one adapter per task, routed per example
    targets: list[str] = field(default_factory=lambda: ["q", "v"])  # roles adapted (see adalink.methods.roles)
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module names/regexes (unknown architectures)

    def validate(self) -> None:
        self.check_positive_int("rank")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0:
            raise self.bad("alpha", self.alpha, "a positive number")
        self.check_probability("dropout")
        check_targets(self)
