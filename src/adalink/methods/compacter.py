"""Compacter and Compacter++: bottleneck adapters whose projections are low-rank PHM layers (survey §10.4).

Karimi Mahabadi et al. 2021 ("Compacter: efficient low-rank hypercomplex adapter layers"). Each adapter projection
``W`` (k×l) is a sum of ``n`` Kronecker products (a *parametrised hypercomplex multiplication*, PHM, layer):

    ``W = Σ_i A_i ⊗ B_i``      A_i (n×n), shared by every adapter layer;  B_i = s_i t_iᵀ (k/n × l/n), rank r

so one adapter costs ``2·r·(d + m) + d + m`` parameters (with biases) and the model ``n³`` more for the shared A.
**Compacter** puts adapters where Houlsby does (after attention and after the FFN); **Compacter++** after the FFN only.

The forward pass never builds ``W``: with ``x`` reshaped to (n, k/n), ``x·W = Σ_i A_iᵀ · (x · s_i) · t_iᵀ`` (as a
matrix of shape (n, l/n), flattened), i.e. three small batched contractions (``torch.einsum`` lowers each to a
reshape + ``bmm``) costing O(N·n·r·(k + n + l)) instead of O(N·k·l) for the dense product.

Defaults are AdapterHub's ``compacter`` / ``compacter++`` configs, which the survey's comparison used (§11.1,
Table 5: 0.30M / 0.15M on T5-Large): m = d/32, GELU, n = 4, rank 1, A ~ N(0, 1e-4²), s and t Glorot-uniform. One
change: the up projection's ``t`` starts at zero, so the adapted model starts exactly at the base.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import ConfigError
from ..routing import Router, TaskIds
from .activations import ACTIVATIONS
from .base import Attachment, Handle, register_method
from .shared.bottleneck import BottleneckConfig, bottleneck_width, hidden_size, module_key, rows_of

__all__ = ["CompacterConfig", "CompacterPlusPlusConfig", "LowRankPHM", "kronecker_matmul"]


def kronecker_matmul(
    x: torch.Tensor, rule: torch.Tensor, left: torch.Tensor, right: torch.Tensor, groups: int
) -> torch.Tensor:
    """``x · Σ_i A_i ⊗ (L_i · R_i)`` without forming the matrix; one weight set per group of rows.

    Args:
        x: (B, ..., k) input; its B rows split into ``groups`` equal groups (1 = one weight set for all).
        rule: (G, n, n, n) the A_i per group.  left: (G, n, k/n, r) the s_i.  right: (G, n, r, l/n) the t_i.

    Returns:
        (B, ..., l).
    """
    n, p, q = rule.shape[1], left.shape[2], right.shape[3]
    xg = x.reshape(groups, -1, n, p)  # (G, N, n, k/n): row a of x's (n × k/n) view
    z = torch.einsum("gNap,gipr->gNiar", xg, left)  # (G, N, n_i, n, r): X · s_i
    z = torch.einsum("gNiar,giac->gNicr", z, rule)  # (G, N, n_i, n, r): A_iᵀ · X · s_i
    y = torch.einsum("gNicr,girq->gNcq", z, right)  # (G, N, n, l/n): Σ_i A_iᵀ · X · s_i · t_iᵀ
    return y.reshape(*x.shape[:-1], n * q)


class LowRankPHM(nn.Module):
    """One LPHM linear layer (k → l) for ``num_tasks`` tasks; A comes from the caller (shared across layers)."""

    def __init__(self, num_tasks: int, n: int, in_features: int, out_features: int, rank: int, *, zero: bool) -> None:
        super().__init__()
        self.left = nn.Parameter(torch.empty(num_tasks, n, in_features // n, rank))  # s_i, (T, n, k/n, r)
        self.right = nn.Parameter(torch.empty(num_tasks, n, rank, out_features // n))  # t_i, (T, n, r, l/n)
        self.bias = nn.Parameter(torch.zeros(num_tasks, out_features))  # (T, l)
        with torch.no_grad():
            for left, right in zip(self.left.flatten(0, 1), self.right.flatten(0, 1), strict=True):  # init only
                nn.init.xavier_uniform_(left)
                if zero:
                    right.zero_()
                else:
                    nn.init.xavier_uniform_(right)

    def forward(self, x: torch.Tensor, rule: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        """``x · Σ_i A_i ⊗ s_i t_iᵀ + b`` for x (B, ..., k), the per-task ``rule`` (T, n, n, n) and the tasks."""
        if isinstance(task_ids, int):
            t = slice(task_ids, task_ids + 1)
            y = kronecker_matmul(x, rule[t], self.left[t], self.right[t], groups=1)  # (B, ..., l)
            return y + self.bias[task_ids]
        y = kronecker_matmul(x, rule[task_ids], self.left[task_ids], self.right[task_ids], groups=x.shape[0])
        return y + self.bias[task_ids].reshape(x.shape[0], *[1] * (x.dim() - 2), -1)  # (B, ..., l)

    def dense(self, rule: torch.Tensor, task: int) -> torch.Tensor:
        """The full (k, l) matrix ``Σ_i A_i ⊗ s_i t_iᵀ`` of one task (for tests and inspection, never in forward)."""
        b = self.left[task] @ self.right[task]  # (n, k/n, l/n)
        total = sum(torch.kron(a, b_i) for a, b_i in zip(rule[task], b, strict=True))
        assert isinstance(total, torch.Tensor)  # a sum of phm_dim >= 1 products, never the empty sum 0
        return total


class _CompacterAdapter(nn.Module):
    """``h + f(h · W_down + b) · W_up + b`` with both W low-rank PHM matrices."""

    def __init__(self, num_tasks: int, n: int, dim: int, width: int, rank: int, activation: str, dropout: float):
        super().__init__()
        self.down = LowRankPHM(num_tasks, n, dim, width, rank, zero=False)
        self.up = LowRankPHM(num_tasks, n, width, dim, rank, zero=True)  # zero t: starts at the base
        self.activation = activation
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def delta(self, h: torch.Tensor, rule: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        x = self.dropout(h).to(rule.dtype)
        z = ACTIVATIONS[self.activation](self.down(x, rule, task_ids))  # (B, ..., m)
        return self.up(z, rule, task_ids).to(h.dtype)  # (B, ..., d)


class _CompacterModules(nn.Module):
    def __init__(self, num_tasks: int, n: int, std: float) -> None:
        super().__init__()
        self.rule = nn.Parameter(torch.randn(num_tasks, n, n, n) * std)  # A_i per task, shared by all layers
        self.adapters = nn.ModuleDict()


@register_method
@dataclass
class CompacterConfig(BottleneckConfig):
    """Compacter: Houlsby-placed adapters (after attention and FFN) with low-rank PHM projections."""

    method: ClassVar[str] = "compacter"
    display_name: ClassVar[str] = "Compacter"
    peft_refusal: ClassVar[str | None] = "peft has no Compacter (hypercomplex adapters)"
    source: ClassVar[str] = "Karimi Mahabadi et al. 2021; survey §10.4, §11.1 and Table 5 (AdapterHub compacter)"
    sites: ClassVar[tuple[str, ...]] = ("o", "ffn_out")

    reduction_factor: float = 32.0  # m = d / 32, rounded up to a multiple of phm_dim (AdapterHub compacter)
    activation: str = "gelu"  # f (AdapterHub compacter)
    phm_dim: int = 4  # n, the number of Kronecker products (and the size of each A_i)
    phm_rank: int = 1  # r, the rank of each B_i = s_i t_iᵀ (Compacter's low-rank PHM)
    rule_init_std: float = 1e-4  # A_i ~ N(0, std²) (AdapterHub phm_init_range)

    def validate(self) -> None:
        super().validate()
        self.check_positive_int("phm_dim")
        self.check_positive_int("phm_rank")
        std = self.rule_init_std
        if isinstance(std, bool) or not isinstance(std, (int, float)) or std <= 0:
            raise self.bad("rule_init_std", std, "a positive number (std of the shared A_i at init)")

    def width(self, dim: int) -> int:
        return bottleneck_width(dim, self.reduction_factor, self.bottleneck, multiple_of=self.phm_dim)

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        modules = _CompacterModules(len(self.tasks), self.phm_dim, self.rule_init_std)
        handles: list[Handle] = []
        touched: dict[str, nn.Module] = {}
        for role in self.sites:
            for path, module in self.find_sites(model, role).items():
                dim = hidden_size(module, path, "out")
                if dim % self.phm_dim:
                    raise ConfigError(
                        f"{type(self).__name__}.phm_dim={self.phm_dim} is invalid for {path!r}: expected a divisor "
                        f"of its width {dim}."
                    )
                adapter = _CompacterAdapter(
                    len(self.tasks), self.phm_dim, dim, self.width(dim), self.phm_rank, self.activation, self.dropout
                )
                modules.adapters[module_key(path)] = adapter
                handles.append(module.register_forward_hook(_hook(adapter, modules, router, path)))
                touched[path] = module
        return Attachment(modules, handles, touched)


@register_method
@dataclass
class CompacterPlusPlusConfig(CompacterConfig):
    """Compacter++: one low-rank PHM adapter after the FFN of every layer (Pfeiffer placement)."""

    method: ClassVar[str] = "compacter_pp"  # Compacter++ (a name that is also a Python identifier)
    display_name: ClassVar[str] = "Compacter++"
    peft_refusal: ClassVar[str | None] = "peft has no Compacter++ (hypercomplex adapters)"
    source: ClassVar[str] = "Karimi Mahabadi et al. 2021; survey §10.4, §11.1 and Table 5 (AdapterHub compacter++)"
    sites: ClassVar[tuple[str, ...]] = ("ffn_out",)


def _hook(
    adapter: _CompacterAdapter, modules: _CompacterModules, router: Router, path: str
) -> Callable[..., torch.Tensor | None]:
    where = f"the Compacter adapter after {path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        return output + adapter.delta(output, modules.rule, router.ids_for(rows_of(output), where))  # (B, T, d)

    return hook
