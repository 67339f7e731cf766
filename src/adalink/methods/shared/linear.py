"""Linear layers as adaptation sites, shared by the LoRA-like methods (LoRA, DoRA, KronA, (IA)³, UniPELT).

:class:`LinearSite` and :func:`find_linear_sites` say which output columns of which layer to adapt (a fused layer
such as GPT-2's ``c_attn`` is split into its q, k, v thirds); :func:`add_output_hook` adds a routed delta to a site's
output through a removable forward hook; :func:`attach_banks` hooks one per-task bank onto every site and merges one
task into the weights; :func:`check_targets` validates a config's ``targets`` and ``roles`` fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...routing import Router, TaskIds
from ..base import Attachment, Handle, MethodConfig
from ..roles import RoleError, find_role

__all__ = ["LINEAR_ROLES", "LinearSite", "add_output_hook", "attach_banks", "check_targets", "find_linear_sites"]

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
