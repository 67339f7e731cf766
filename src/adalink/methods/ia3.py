"""(IA)3: learned vectors that rescale keys, values and FFN hidden activations (Liu et al. 2022; survey §7.2).

Per transformer block, ``k ← l_k ⊙ k``, ``v ← l_v ⊙ v`` and ``h_ff ← l_ff ⊙ γ(W_1 x)`` with every vector initialised
to ones, so training starts at the base model. Keys and values are rescaled at the output of the k and v
projections (a forward hook); the FFN hidden activation is rescaled at the *input* of the FFN output projection
(a forward pre-hook), which is where ``γ(W_1 x)`` (Llama, gated T5: ``γ(W_gate x) ⊙ W_up x``) enters. GPT-2 fuses
q, k, v into one ``Conv1D`` (``c_attn``): only its k and v thirds are rescaled.

Each vector is stacked per task, ``l`` (T, d), and gathered per example (``l[task_ids]``), one elementwise product.
``merge`` folds one task exactly: output rescaling multiplies the rows of ``W`` and ``b`` (columns of a Conv1D
weight), input rescaling the columns of ``W``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import torch
from torch import nn

from ..routing import Router, TaskIds
from .base import Attachment, Handle, MethodConfig, register_method
from .shared.linear import LINEAR_ROLES, LinearSite, check_targets, find_linear_sites

__all__ = ["IA3Config", "IA3Vectors"]


class IA3Vectors(nn.Module):
    """One rescaling vector per task for one site: ``l`` (T, d), ones at initialisation."""

    def __init__(self, tasks: int, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(tasks, dim))  # (T, d)

    def forward(self, ids: TaskIds, like: torch.Tensor) -> torch.Tensor:
        """The vector(s) for ``ids``, shaped to broadcast over ``like`` (B, ..., d)."""
        if isinstance(ids, int):
            return self.scale[ids].to(like.dtype)  # (d,)
        shape = (ids.shape[0], *(1,) * (like.dim() - 2), self.scale.shape[1])
        return self.scale[ids].reshape(shape).to(like.dtype)  # (B, 1, ..., d)


def _rows(x: torch.Tensor) -> int:
    return x.shape[0] if x.dim() >= 2 else 1


def _output_hook(site: LinearSite, vectors: IA3Vectors, router: Router) -> Callable[..., torch.Tensor | None]:
    where = f"the (IA)3 layer {site.path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        scale = vectors(router.ids_for(_rows(output), where), output)  # (d,) or (B, 1, ..., d)
        if site.out_features != site.total:  # a slice of a fused layer: ones elsewhere
            ones = torch.ones((*scale.shape[:-1], site.total), dtype=scale.dtype, device=scale.device)
            scale = torch.cat([ones[..., : site.start], scale, ones[..., site.start + site.out_features :]], -1)
        return output * scale

    return hook


def _input_hook(site: LinearSite, vectors: IA3Vectors, router: Router) -> Callable[..., tuple | None]:
    where = f"the (IA)3 feed-forward layer {site.path!r}"

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if router.disabled:
            return None
        x = args[0]  # (B, L, d_ff)
        return (x * vectors(router.ids_for(_rows(x), where), x), *args[1:])

    return hook


def _attach_ia3(outputs: Sequence[LinearSite], inputs: Sequence[LinearSite], router: Router, tasks: int) -> Attachment:
    out_by_key = {s.key: IA3Vectors(tasks, s.out_features) for s in outputs}
    in_by_key = {s.key: IA3Vectors(tasks, s.in_features) for s in inputs}
    out_vectors, in_vectors = nn.ModuleDict(out_by_key), nn.ModuleDict(in_by_key)
    handles: list[Handle] = [
        s.module.register_forward_hook(_output_hook(s, out_by_key[s.key], router)) for s in outputs
    ]
    handles += [s.module.register_forward_pre_hook(_input_hook(s, in_by_key[s.key], router)) for s in inputs]

    def merge(task: int) -> None:
        with torch.no_grad():
            for s in outputs:
                scale = out_vectors[s.key].scale[task]
                weight, bias = s.weight(), s.bias()
                weight.mul_(scale[:, None].to(weight.dtype))  # rows of W (columns of a Conv1D)
                if bias is not None:
                    bias.mul_(scale.to(bias.dtype))
            for s in inputs:
                weight = s.weight()
                weight.mul_(in_vectors[s.key].scale[task][None, :].to(weight.dtype))

    touched = {s.path: s.module for s in (*outputs, *inputs)}
    modules = nn.ModuleDict({"outputs": out_vectors, "inputs": in_vectors})
    return Attachment(modules, handles, touched, merge=merge)


@register_method
@dataclass
class IA3Config(MethodConfig):
    """(IA)3: rescale keys, values (outputs of ``targets``) and FFN activations (inputs of ``feedforward``)."""

    method: ClassVar[str] = "ia3"
    display_name: ClassVar[str] = "(IA)3"
    mergeable: ClassVar[bool] = True
    # Liu et al. 2022 (T-Few) §3.3 use 3e-3 with Adafactor over 1,000 steps; in a short AdamW run 1e-2 is better:
    # MiniLM + tweets, 150 steps: 0.784 at 3e-3, 0.866 at 1e-2 (docs/lora_family.md)
    default_lr: ClassVar[float] = 1e-2
    source: ClassVar[str] = "Liu et al. 2022 (T-Few, (IA)3) §3.3; survey §7.2, Table 5"

    tasks: list[str] = field(default_factory=lambda: ["default"])  # one vector set per task, routed per example
    targets: list[str] = field(default_factory=lambda: ["k", "v"])  # roles whose OUTPUT is rescaled (l_k, l_v)
    feedforward: list[str] = field(default_factory=lambda: ["ffn_out"])  # roles whose INPUT is rescaled (l_ff)
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module names/regexes (unknown architectures)

    def validate(self) -> None:
        check_targets(self)
        if not isinstance(self.feedforward, list) or any(r not in LINEAR_ROLES for r in self.feedforward):
            raise self.bad("feedforward", self.feedforward, f"a list of roles from {list(LINEAR_ROLES)}")
        if len(set(self.feedforward)) != len(self.feedforward):
            raise self.bad("feedforward", self.feedforward, "distinct roles")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        outputs = find_linear_sites(model, self.targets, self.roles, method=self.method)
        found = find_linear_sites(model, self.feedforward, self.roles, method=self.method) if self.feedforward else []
        # inputs are rescaled whole, once per layer (even where a fused layer's role names a slice of its output)
        inputs = list({s.path: replace(s, out_features=s.total, start=0, label="") for s in found}.values())
        return _attach_ia3(outputs, inputs, router, len(self.tasks))
