"""Full fine-tuning as a method config: every base parameter trains in place (the survey's reference, Table 5).

Nothing is attached; :class:`adalink.PeftModel` unfreezes the parameters listed in ``Attachment.base_parameters`` and
``save_pretrained`` writes all of them (with the base's fingerprint of what is left). ``adalink train --method full``
trains it as every other method; ``adalink merge`` (or ``merge_and_unload()``) gives the plain ``transformers``
model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..routing import Router
from .base import Attachment, MethodConfig, register_method

__all__ = ["FullConfig"]


@register_method
@dataclass
class FullConfig(MethodConfig):
    """Full tuning has no knobs: every parameter of the base model is trained."""

    method: ClassVar[str] = "full"
    display_name: ClassVar[str] = "Full tuning"
    shares_base: ClassVar[bool] = False  # it trains the base weights themselves
    peft_refusal: ClassVar[str | None] = (
        "full fine-tuning has no adapter: `adalink merge` writes the run as a plain transformers checkpoint"
    )
    mergeable: ClassVar[bool] = True  # the weights already are the base model's: merging is a no-op
    default_lr: ClassVar[float] = 5e-5  # the usual full fine-tuning rate (survey Appendix B sweep {1e-3, 1e-4, 5e-5})
    source: ClassVar[str] = "Lialin et al. 2023 (survey), Table 5 (full tuning, the reference)"

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        del router  # one set of weights for every task
        parameters = dict(model.named_parameters())  # tied parameters appear once, under their first name
        return Attachment(nn.Module(), [], {}, merge=lambda task: None, base_parameters=parameters)
