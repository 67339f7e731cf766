"""LoRA: low-rank adaptation of frozen linear layers (Hu et al. 2022; survey §9.2, Table 5).

A target layer ``h = W x + b`` becomes ``h = W x + b + (α / r) · B A dropout(x)`` with ``A`` (r×in), ``B`` (out×r)
and ``B = 0`` at initialisation, so training starts at the base model. Each target keeps one LoRA per task as
stacked tensors ``A`` (T, r, in) and ``B`` (T, out, r); a mixed batch gathers each example's pair and runs two
batched matmuls. The update is added by a removable forward hook on the target's output, so model code is never
edited and :meth:`PeftModel.unload` gives the base back bit for bit; ``merge`` folds ``(α / r) · B A`` of one task
into the weight.

Two registered names: ``lora`` adapts the attention query and value projections (the survey's "LoRA (q, v)"),
``lora_all`` every linear layer of the transformer blocks (q, k, v, o, FFN in and out; "LoRA (all linear)").
GPT-2 fuses q, k and v into one ``Conv1D`` (``c_attn``, weight stored (in, out)): ``lora`` gives the q and v thirds
of its output one LoRA each and leaves k untouched; ``lora_all`` gives the whole fused layer one LoRA (as peft does).

Reusable pieces (UniPELT, DoRA and KronA build on them): :class:`LinearSite` and :func:`find_linear_sites` (which
output columns of which layer to adapt), :class:`LoRABank` (stacked per-task LoRA for one site) and
:func:`add_output_hook` (add a routed delta to a site's output), :func:`attach_lora` (all of them together).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..routing import Router, TaskIds
from .base import Attachment, Handle, MethodConfig, register_method
from .roles import RoleError, find_role

__all__ = [
    "LINEAR_ROLES",
    "LinearSite",
    "LoRAAllConfig",
    "LoRABank",
    "LoRAConfig",
    "LoRAFields",
    "add_output_hook",
    "attach_banks",
    "attach_lora",
    "check_targets",
    "find_linear_sites",
]

LINEAR_ROLES = ("q", "k", "v", "o", "ffn_in", "ffn_out")  # roles played by a linear layer (nn.Linear or Conv1D)
_FUSED = ("q", "k", "v")  # roles that one fused layer may play together (GPT-2's c_attn), in output order


# ------------------------------------------------------------------------------------------------------- sites
@dataclass
class LinearSite:
    """Output columns ``[start, start + out_features)`` of a linear layer (``nn.Linear`` or GPT-2's ``Conv1D``)."""

    path: str  # dotted path of the layer in the model
    module: nn.Module  # the layer itself
    in_features: int
    out_features: int  # width of the adapted slice
    start: int  # first adapted output column
    total: int  # the layer's full output width
    transposed: bool  # Conv1D stores its weight (in, out)
    label: str = ""  # which role(s) the slice plays, e.g. "q" for a third of c_attn; "" = the whole layer

    @property
    def key(self) -> str:
        """A ModuleDict-safe name, unique per site."""
        return self.path.replace(".", "__") + (f"__{self.label}" if self.label else "")

    def weight(self) -> torch.Tensor:
        """The slice's weight as (out, in) (a view for nn.Linear, a transposed view for Conv1D)."""
        w = self.module.weight
        if self.transposed:
            return w[:, self.start : self.start + self.out_features].t()
        return w[self.start : self.start + self.out_features]

    def bias(self) -> torch.Tensor | None:
        b = getattr(self.module, "bias", None)
        return None if b is None else b[self.start : self.start + self.out_features]

    def pad(self, delta: torch.Tensor) -> torch.Tensor:
        """Widen a (..., out_features) delta to the layer's full output with zeros elsewhere."""
        if self.out_features == self.total:
            return delta
        return F.pad(delta, (self.start, self.total - self.start - self.out_features))


def _dims(module: nn.Module, path: str) -> tuple[int, int, bool]:
    weight = getattr(module, "weight", None)
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    if type(module).__name__ == "Conv1D" and isinstance(weight, torch.Tensor) and weight.dim() == 2:
        return weight.shape[0], weight.shape[1], True
    raise RoleError(f"{path!r} is a {type(module).__name__}: expected an nn.Linear or a transformers Conv1D.")


def find_linear_sites(
    model: nn.Module, targets: Sequence[str], overrides: Mapping[str, Sequence[str]] | None = None, *, method: str
) -> list[LinearSite]:
    """The linear layers (or fused slices) playing ``targets`` roles, in model order, each layer once.

    A layer that plays several of q, k, v (GPT-2's ``c_attn``) is split into equal thirds: it is adapted as one
    site when every role it plays is targeted, else one site per targeted role (its third of the output).
    """
    roles_of: dict[str, list[str]] = {}
    modules: dict[str, nn.Module] = {}
    for role in targets:
        for path, module in find_role(model, role, overrides, method=method).items():
            roles_of.setdefault(path, []).append(role)
            modules[path] = module
    fused: dict[str, list[str]] = {}
    for role in _FUSED:
        try:
            found = find_role(model, role, overrides, method=method)
        except RoleError:
            continue
        for path in found:
            fused.setdefault(path, []).append(role)
    order = {name: i for i, (name, _) in enumerate(model.named_modules())}
    sites = []
    for path in sorted(modules, key=lambda p: order.get(p, len(order))):
        in_f, out_f, transposed = _dims(modules[path], path)
        parts = fused.get(path, [])
        wanted = roles_of[path]
        if len(parts) < 2 or all(role in wanted for role in parts):
            sites.append(LinearSite(path, modules[path], in_f, out_f, 0, out_f, transposed))
            continue
        if out_f % len(parts):
            raise RoleError(f"{path!r} fuses roles {parts} but its width {out_f} does not split evenly.")
        width = out_f // len(parts)
        for role in (r for r in parts if r in wanted):
            start = parts.index(role) * width
            sites.append(LinearSite(path, modules[path], in_f, width, start, out_f, transposed, label=role))
    return sites


# ------------------------------------------------------------------------------------------------ the LoRA bank
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


def add_output_hook(
    site: LinearSite, delta: Callable[[torch.Tensor, TaskIds], torch.Tensor], router: Router, method: str
) -> torch.utils.hooks.RemovableHandle:
    """Add ``delta(x, task_ids)`` (B, ..., site.out_features) to the site's output slice; a no-op when disabled."""
    where = f"the {method} layer {site.path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        x = args[0]
        ids = router.ids_for(x.shape[0] if x.dim() >= 2 else 1, where)
        return output + site.pad(delta(x, ids).to(output.dtype))

    return site.module.register_forward_hook(hook)


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


def attach_banks(sites: Sequence[LinearSite], banks: nn.ModuleDict, router: Router, method: str) -> Attachment:
    """Hook ``banks[site.key]`` (any module with ``forward(x, ids)`` and ``delta_weight(task)``, its tensors
    stacked over the tasks) onto every site; merge adds one task's ``delta_weight`` to each site's weight."""
    handles: list[Handle] = [add_output_hook(s, banks[s.key], router, method) for s in sites]

    def merge(task: int) -> None:
        with torch.no_grad():
            for s in sites:
                weight = s.weight()
                weight += banks[s.key].delta_weight(task).to(weight.dtype)

    touched = {s.path: s.module for s in sites}
    return Attachment(banks, handles, touched, merge=merge)


# ------------------------------------------------------------------------------------------------------ configs
def check_targets(config: MethodConfig, allowed: Sequence[str] = LINEAR_ROLES) -> None:
    """Validate a config's ``targets`` (roles) and ``roles`` (per-role module names) fields."""
    targets = config.targets  # type: ignore[attr-defined]
    if not targets or any(t not in allowed for t in targets) or len(set(targets)) != len(targets):
        raise config.bad("targets", targets, f"a non-empty list of distinct roles from {list(allowed)}")
    roles = config.roles  # type: ignore[attr-defined]
    for role, names in roles.items():
        if role not in allowed or not names or not all(isinstance(n, str) and n for n in names):
            raise config.bad("roles", roles, f"a mapping from roles in {list(allowed)} to lists of module names")


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


@register_method
@dataclass
class LoRAConfig(LoRAFields):
    """LoRA on the attention query and value projections (survey §9.2, "LoRA (q, v)")."""

    method: ClassVar[str] = "lora"
    display_name: ClassVar[str] = "LoRA"
    exports_as_lora: ClassVar[bool] = True
    mergeable: ClassVar[bool] = True
    default_lr: ClassVar[float] = 1e-3  # survey §11.1: 1e-3 was the best of its sweep for LoRA (Appendix B)
    source: ClassVar[str] = "Hu et al. 2022 (LoRA); survey §9.2, Table 5 (r = 8)"

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        sites = find_linear_sites(model, self.targets, self.roles, method=self.method)
        return attach_lora(
            sites,
            router,
            rank=self.rank,
            alpha=self.alpha,
            dropout=self.dropout,
            tasks=len(self.tasks),
            method=self.method,
        )


@register_method
@dataclass
class LoRAAllConfig(LoRAConfig):
    """LoRA on every linear layer of the transformer blocks (survey §9.2, §11.1, "LoRA (all linear)")."""

    method: ClassVar[str] = "lora_all"
    display_name: ClassVar[str] = "LoRA (all linear layers)"
    source: ClassVar[str] = "Hu et al. 2022; Dettmers et al. 2023; survey §9.2, Table 5 (r = 8)"

    targets: list[str] = field(default_factory=lambda: list(LINEAR_ROLES))  # q, k, v, o, ffn_in, ffn_out
