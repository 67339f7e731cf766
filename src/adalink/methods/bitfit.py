"""BitFit: train only the model's bias terms (Ben Zaken et al. 2022; survey §9, Table 5).

Every bias ``b`` of the base model (attention and FFN projections, LayerNorms) is re-parametrised as ``b + Δb`` with
``Δb`` zero-initialised (see :mod:`._delta`): the model is unchanged at init, the adapter file holds only ``Δb``,
and merging folds it into ``b``. Models built without biases (T5, Llama, most recent LLMs) have nothing to tune:
attaching raises a :class:`ConfigError` naming the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..errors import ConfigError
from ..routing import Router
from ._delta import attach_deltas
from .base import Attachment, MethodConfig, register_method
from .roles import model_type_of

__all__ = ["BitFitConfig", "bias_tensors"]


@register_method
@dataclass
class BitFitConfig(MethodConfig):
    """BitFit has no knobs beyond ``modules_to_save`` (whose biases train with the module, not as deltas)."""

    method: ClassVar[str] = "bitfit"
    display_name: ClassVar[str] = "BitFit"
    peft_refusal: ClassVar[str | None] = (
        "peft has no BitFit (its LoRA bias='all' trains every bias, but only beside a LoRA)"
    )
    mergeable: ClassVar[bool] = True  # b + Δb folds into b exactly
    default_lr: ClassVar[float] = 1e-3  # Ben Zaken et al. §3 sweep {1e-4, 4e-4, 7e-4, 1e-3}; survey Appendix B
    source: ClassVar[str] = "Ben Zaken et al. 2022 (BitFit), §2; Lialin et al. 2023 (survey), §9, Table 5"

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        targets = bias_tensors(model, self.modules_to_save)
        if not targets:
            raise ConfigError(
                f"BitFitConfig cannot attach to {type(model).__name__} (model_type {model_type_of(model)!r}): it has "
                "no bias parameters outside modules_to_save (T5, Llama and most recent LLMs are built without "
                "biases), so BitFit would train nothing. Choose another method, e.g. ln_tuning or (IA)3."
            )
        return attach_deltas(targets, router)


def bias_tensors(model: nn.Module, skip: list[str] | None = None) -> dict[str, tuple[nn.Module, str]]:
    """{``<module path>.bias``: (module, ``"bias"``)} for every module whose own ``bias`` is a parameter."""
    found: dict[str, tuple[nn.Module, str]] = {}
    for path, module in model.named_modules():
        if any(path == s or path.startswith(f"{s}.") for s in skip or []):
            continue
        if isinstance(module._parameters.get("bias"), nn.Parameter):
            found[f"{path}.bias"] = (module, "bias")
    return found
