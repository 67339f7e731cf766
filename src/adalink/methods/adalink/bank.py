"""The AdaLink module: a bank of low-rank links, one per task, applied per example in one vectorised op.

Paper: Wang et al., "Non-intrusive adaptation: input-centric parameter-efficient fine-tuning", §3.2, eq. (1)-(2):
``Ẽ = E + f(E · W_down) · W_up``. Dropout (paper default 0.1) is applied to the AdaLink's input only, so the
frozen path ``E`` is never perturbed and evaluation (dropout off) is exactly the formula above.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...routing import TaskIds
from ..activations import ACTIVATIONS
from ..base import select_task_rows

__all__ = ["SCALED_NORMAL_GAIN", "AdaLinkBank"]

# init "scaled_normal": W_down ~ N(0, (3/√d)²). docs/adalink-on-decoders.md: at r8 on SmolLM2 (d 576) this is the
# `normal` init's 1/r = 0.125 that learned fastest there, 5.2x kaiming-uniform's 1/√(3d), and it does not shrink with r.
SCALED_NORMAL_GAIN = 3.0


class AdaLinkBank(nn.Module):
    """``num_tasks`` AdaLinks of width ``dim`` and rank ``rank``, stored as stacked tensors.

    Stacking (instead of a dict of modules) lets a mixed-task batch gather each example's weights with one index
    (``down[task_ids]``) and run two batched matmuls: no Python loop over tasks or examples.
    """

    def __init__(
        self,
        num_tasks: int,
        dim: int,
        rank: int,
        *,
        dropout: float = 0.1,
        activation: str | None = None,
        init: str = "scaled_normal",
    ) -> None:
        super().__init__()
        self.dim, self.rank, self.activation, self.init = dim, rank, activation, init
        self.down = nn.Parameter(torch.empty(num_tasks, dim, rank))  # W_down per task, (T, d, r)
        self.up = nn.Parameter(torch.zeros(num_tasks, rank, dim))  # W_up per task, (T, r, d): zero => identity
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters()

    @property
    def num_tasks(self) -> int:
        return self.down.shape[0]

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for down in self.down:  # (d, r) each; init runs once, never on the hot path
                _init_down(down, self.init)
            self.up.zero_()

    def forward(self, x: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        """Adapt ``x`` of shape (B, ..., d). ``task_ids``: an int for the whole batch or a (B,) LongTensor."""
        h = self.dropout(x).to(self.down.dtype)
        if isinstance(task_ids, int):
            h = h @ self.down[task_ids]  # (B, ..., r)
            delta = self._act(h) @ self.up[task_ids]  # (B, ..., d)
        else:
            flat = h.reshape(x.shape[0], -1, self.dim)  # (B, N, d)
            h = torch.bmm(flat, self.down[task_ids])  # (B, N, r): each example with its own W_down
            delta = torch.bmm(self._act(h), self.up[task_ids]).reshape(x.shape)  # (B, ..., d)
        return x + delta.to(x.dtype)

    def _act(self, h: torch.Tensor) -> torch.Tensor:
        return h if self.activation is None else ACTIVATIONS[self.activation](h)

    def linear_map(self, task: int) -> torch.Tensor:
        """``W_down · W_up`` (d, d) of one task: identity-activation AdaLink is ``E ↦ E (I + this)``.

        In float32 at least (the bank's dtype if wider): a sum of r products, exact to float32 rounding, and half the
        memory of float64 beside a vocabulary table being folded.
        """
        acc = torch.promote_types(self.down.dtype, torch.float32)
        return self.down[task].detach().to(acc) @ self.up[task].detach().to(acc)

    def select_tasks(self, indices: list[int]) -> None:
        """Keep only the given tasks, in the given order (as ``PeftModel.select_tasks`` does for every method)."""
        select_task_rows(self, indices, self.down.shape[0])

    def extra_repr(self) -> str:
        return f"num_tasks={self.num_tasks}, dim={self.dim}, rank={self.rank}, activation={self.activation}"


def _init_down(weight: torch.Tensor, init: str) -> None:
    # Initialise the transpose (r, d) so fan_in is d, matching LoRA's A as an nn.Linear(d, r) weight.
    as_linear = weight.T
    if init == "kaiming_uniform":
        nn.init.kaiming_uniform_(as_linear, a=math.sqrt(5))
    elif init == "xavier_uniform":
        nn.init.xavier_uniform_(as_linear)
    elif init == "scaled_normal":  # rank-independent: h = E·W_down has entries of RMS ~3·RMS(E) at any rank
        nn.init.normal_(as_linear, std=SCALED_NORMAL_GAIN / math.sqrt(weight.shape[0]))
    elif init == "normal":
        nn.init.normal_(as_linear, std=1.0 / weight.shape[1])
    elif init == "orthogonal":
        nn.init.orthogonal_(as_linear)
    else:
        raise ValueError(f"unknown init {init!r}")
