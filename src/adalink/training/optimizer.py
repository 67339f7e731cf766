"""The optimiser of a run, with the new head in a parameter group of its own, and its learning-rate schedule."""

from __future__ import annotations

from typing import Any

import torch

from ..peft_model import PeftModel
from ..tasks.formats import ClassificationFormat, TextToTextFormat
from ..tasks.sft import SFTFormat
from .args import OptimOptions

__all__ = ["build_optimizer", "build_schedule", "head_parameter_ids"]


def build_optimizer(
    optim: OptimOptions, params: list[torch.nn.Parameter], head: set[int], *, lr: float
) -> torch.optim.Optimizer:
    """The optimiser over ``params`` at ``lr`` (``--lr``, else the method's own); those whose id is in ``head`` (the
    new head) get ``--head-lr`` when given."""
    groups: list[dict[str, Any]] = [{"params": params}]
    if optim.head_lr is not None:
        body, heads = [p for p in params if id(p) not in head], [p for p in params if id(p) in head]
        groups = [g for g in ({"params": body}, {"params": heads, "lr": optim.head_lr}) if g["params"]]
    if optim.optimizer == "adafactor":  # the AdaLink paper's optimiser (§4.1.2), with an explicit learning rate
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=lr, relative_step=False, scale_parameter=False, warmup_init=False)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=0.0)


def build_schedule(optim: OptimOptions, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """``--schedule``: linear warmup, then linear decay to 0 at ``--max-steps`` or reciprocal square root decay."""
    from transformers import get_inverse_sqrt_schedule, get_linear_schedule_with_warmup

    warmup = int(optim.warmup_ratio * optim.max_steps)
    if optim.schedule == "rsqrt":  # linear warmup then reciprocal square root decay (paper §4.1.2)
        return get_inverse_sqrt_schedule(optimizer, num_warmup_steps=max(1, warmup))
    return get_linear_schedule_with_warmup(optimizer, warmup, optim.max_steps)


def head_parameter_ids(model: torch.nn.Module, fmt: ClassificationFormat | TextToTextFormat | SFTFormat) -> set[int]:
    """ids of the parameters of the format's new head modules (trained by every method, counted apart).

    ``model`` is a :class:`PeftModel` or, for full tuning, the plain transformers model itself (whose own
    ``base_model`` attribute is its backbone, which has no head: it must not be looked at).
    """
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    return {id(p) for name in fmt.head_modules(base) for p in base.get_submodule(name).parameters()}
