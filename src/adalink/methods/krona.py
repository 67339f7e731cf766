"""KronA: a Kronecker-product update of frozen linear layers (Edalati et al. 2022; survey §9.3, Table 5).

``ΔW = s · (A ⊗ B)`` with ``A`` (a_out×a_in), ``B`` (b_out×b_in), ``out = a_out·b_out`` and ``in = a_in·b_in``.
Unlike LoRA's ``B A`` the Kronecker product keeps the rank of its factors (rank(A ⊗ B) = rank A · rank B) at a
fraction of the parameters. The forward pass never forms ``ΔW`` (out×in): with the input split as
``X = x.reshape(a_in, b_in)``, ``(A ⊗ B) x = vec(A X Bᵀ)``, two small matmuls per token (the Kronecker-vector
product of §9.3). ``merge`` materialises ``s · A ⊗ B`` once and adds it to the weight.

Factor shapes follow peft's LoKr (``factorization``): each dimension is split into two factors near its square
root (``factor=-1``, the fewest parameters) or as ``(factor, dim / factor)``; ``A`` takes the smaller factors.
``A`` starts at zero and ``B`` as nn.Linear's default, so training starts at the base. One pair per task, stacked
(T, ...) and gathered per example. GPT-2's fused ``c_attn``: the q and v thirds get one KronA each (as ``lora``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..routing import Router, TaskIds
from .base import Attachment, MethodConfig, register_method
from .shared.linear import LinearSite, attach_banks, check_targets, find_linear_sites

__all__ = ["KronABank", "KronAConfig", "factorization"]


def factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """Split ``dimension`` into ``(m, n)``, ``m ≤ n``, ``m · n = dimension`` (peft LoKr's rule, for equal shapes).

    ``factor > 0`` dividing ``dimension`` gives ``(factor, dimension / factor)``; otherwise the pair nearest the
    square root (bounded by ``factor`` when positive).
    """
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor
    bound = dimension if factor == -1 else factor
    m, n = 1, dimension
    length = m + n
    while m < n:
        candidate = m + 1
        while dimension % candidate:
            candidate += 1
        other = dimension // candidate
        if candidate + other > length or candidate > bound:
            break
        m, n = candidate, other
    return (n, m) if m > n else (m, n)


class KronABank(nn.Module):
    """One Kronecker update per task for one linear site: ``ΔW_t = s · A_t ⊗ B_t``."""

    def __init__(self, tasks: int, site: LinearSite, factor: int, scale: float, dropout: float) -> None:
        super().__init__()
        a_in, b_in = factorization(site.in_features, factor)
        a_out, b_out = factorization(site.out_features, factor)
        self.scale = scale
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.A = nn.Parameter(torch.zeros(tasks, a_out, a_in))  # (T, a_out, a_in), zeros: start at the base
        self.B = nn.Parameter(torch.empty(tasks, b_out, b_in))  # (T, b_out, b_in)
        for b in self.B:
            nn.init.kaiming_uniform_(b, a=math.sqrt(5))

    def forward(self, x: torch.Tensor, ids: TaskIds) -> torch.Tensor:
        """x (B, ..., in) -> s · (A ⊗ B) dropout(x), (B, ..., out), via vec(A X Bᵀ)."""
        a_out, a_in = self.A.shape[1:]
        b_out, b_in = self.B.shape[1:]
        lead = x.shape[:-1]
        x = self.dropout(x.to(self.A.dtype))
        if isinstance(ids, int):
            X = x.reshape(-1, a_in, b_in)  # (N, a_in, b_in)
            Y = self.A[ids] @ X @ self.B[ids].transpose(0, 1)  # (N, a_out, b_out)
        else:
            X = x.reshape(lead[0], -1, a_in, b_in)  # (B, L, a_in, b_in)
            A, B = self.A[ids][:, None], self.B[ids][:, None]  # (B, 1, a_out, a_in), (B, 1, b_out, b_in)
            Y = A @ X @ B.transpose(-1, -2)  # (B, L, a_out, b_out)
        return Y.reshape(*lead, a_out * b_out) * self.scale

    def delta_weight(self, task: int) -> torch.Tensor:
        """s · A_t ⊗ B_t, (out, in): materialised only to merge."""
        return torch.kron(self.A[task], self.B[task]) * self.scale


@register_method
@dataclass
class KronAConfig(MethodConfig):
    """KronA on the attention query and value projections (Edalati et al. 2022 adapt W_q and W_v, as LoRA)."""

    method: ClassVar[str] = "krona"
    display_name: ClassVar[str] = "KronA"
    mergeable: ClassVar[bool] = True
    # ~10k parameters on MiniLM train slowly at LoRA's 1e-3: tweets, 150 steps: 0.705 (the majority class) at 1e-3,
    # 0.869 at 1e-2 (docs/lora_family.md)
    default_lr: ClassVar[float] = 1e-2
    source: ClassVar[str] = "Edalati et al. 2022 (KronA); survey §9.3, Table 5"

    factor: int = -1  # factor shapes: -1 = near-square split of each dimension (fewest parameters), else (f, d/f)
    scale: float = 1.0  # s, a constant multiplying A ⊗ B (peft LoKr's alpha / r)
    dropout: float = 0.0  # on the KronA input during training
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one KronA per task, routed per example
    targets: list[str] = field(default_factory=lambda: ["q", "v"])  # roles adapted (see adalink.methods.roles)
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module names/regexes (unknown architectures)

    def validate(self) -> None:
        factor = self.factor
        if isinstance(factor, bool) or not isinstance(factor, int) or (factor <= 0 and factor != -1):
            raise self.bad("factor", self.factor, "-1 (near-square factors) or a positive integer")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or self.scale <= 0:
            raise self.bad("scale", self.scale, "a positive number")
        self.check_probability("dropout")
        check_targets(self)

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        sites = find_linear_sites(model, self.targets, self.roles, method=self.method)
        banks = nn.ModuleDict(
            {s.key: KronABank(len(self.tasks), s, self.factor, self.scale, self.dropout) for s in sites}
        )
        return attach_banks(sites, banks, router, self.method)
