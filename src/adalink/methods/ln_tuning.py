"""LayerNorm tuning: train only the gains and biases of the model's LayerNorms / RMSNorms.

Survey (Lialin et al. 2023) §9 and Table 5 ("LN tuning"); Qi et al. 2022. Each norm's affine parameters are
re-parametrised as ``γ' = γ + Δγ`` and ``β' = β + Δβ`` with ``Δ`` zero-initialised (see :mod:`._delta`), so the
model is unchanged at init, the adapter file holds only the deltas, and merging folds them back into ``γ``, ``β``.
The trainable count equals Hugging Face peft's ``LNTuningConfig`` on the same norms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from ..routing import Router
from ._delta import attach_deltas
from .base import Attachment, MethodConfig, register_method
from .roles import find_role

__all__ = ["LNTuningConfig", "norm_tensors"]


@register_method
@dataclass
class LNTuningConfig(MethodConfig):
    """Which norms to tune; every one of the ``layernorm`` role by default (the final norm included)."""

    method: ClassVar[str] = "ln_tuning"
    display_name: ClassVar[str] = "LN tuning"
    mergeable: ClassVar[bool] = True  # γ + Δγ and β + Δβ fold into the norm exactly
    default_lr: ClassVar[float] = 1e-3  # the survey's sweep (Appendix B: {1e-3, 1e-4, 5e-5}); 1e-3 in our runs
    source: ClassVar[str] = "Lialin et al. 2023 (survey), §9, Table 5; Qi et al. 2022"

    # role name -> exact dotted module paths or full-match regexes, overriding the architecture's role map
    roles: dict[str, list[str]] = field(default_factory=dict)

    def validate(self) -> None:
        if not all(isinstance(k, str) and isinstance(v, list) for k, v in self.roles.items()):
            raise self.bad("roles", self.roles, "a mapping of role name -> list of module paths or regexes")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        return attach_deltas(norm_tensors(model, self.roles, self.modules_to_save), router)


def norm_tensors(
    model: nn.Module, roles: dict[str, list[str]] | None = None, skip: list[str] | None = None
) -> dict[str, tuple[nn.Module, str]]:
    """{``<norm path>.weight`` / ``.bias``: (norm module, tensor name)} for every norm of the ``layernorm`` role."""
    found: dict[str, tuple[nn.Module, str]] = {}
    for path, module in find_role(model, "layernorm", roles, method="LNTuningConfig").items():
        if any(path == s or path.startswith(f"{s}.") for s in skip or []):
            continue  # trained whole as a module to save
        for name in ("weight", "bias"):
            if isinstance(getattr(module, name, None), nn.Parameter):
                found[f"{path}.{name}"] = (module, name)
    return found
