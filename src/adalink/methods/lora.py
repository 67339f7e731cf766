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

The pieces several methods share live in :mod:`adalink.methods.shared`: the linear sites and output hooks
(:mod:`~adalink.methods.shared.linear`) and the stacked LoRA bank with LoRA's fields
(:mod:`~adalink.methods.shared.lora_bank`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from ..routing import Router
from .base import Attachment, register_method
from .shared.linear import LINEAR_ROLES, find_linear_sites
from .shared.lora_bank import LoRAFields, attach_lora

__all__ = ["LoRAAllConfig", "LoRAConfig"]


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
