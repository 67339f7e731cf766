"""One peft tuner layer per adapted modality: the named adapters' AdaLink banks, switched or mixed per example.

The layer is not put into the model. adalink's own forward hooks (:func:`~adalink.methods.adalink.hooks.hook_site`)
call it on the adapted module's output ``E`` with the routed adapter index: one adapter for the batch runs that
adapter's :class:`~adalink.AdaLinkBank` exactly as ``adalink.get_peft_model`` does; peft's mixed batch
(``adapter_names=[...]``) stacks the adapters' ``W_down`` / ``W_up`` (zero-padded to the largest rank, which adds
exactly 0; zeros for ``"__base__"``) and runs the bank's own forward on them: one gather and two ``bmm``, no loop over
examples (Wang et al., §3.2, eq. (1)-(2): ``E' = E + f(dropout(E)·W_down)·W_up``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from ..errors import UsageError
from ..methods.adalink import AdaLinkBank
from ..routing import Router, TaskIds
from .peft_registration import register

__all__ = ["BASE_ADAPTER", "AdaLinkLayer"]

BASE_ADAPTER = "__base__"  # peft's name, in adapter_names, for rows that take the base model


class AdaLinkLayer(nn.Module, BaseTunerLayer):
    """The banks of one modality (``adalink_bank[adapter_name]``), called by the hooks of that modality's sites."""

    adapter_layer_names = ("adalink_bank",)

    def __init__(self, router: Router) -> None:
        nn.Module.__init__(self)
        self.adalink_bank = nn.ModuleDict()
        self.router = router  # adapter names by index (the last is BASE_ADAPTER) and the routing of the call
        self.merged_adapters: list[str] = []  # set by the tuner, which folds every site at once
        self._active_adapter: str | list[str] = []
        self._disable_adapters = False

    def forward(self, x: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        """``x``: (B, ..., d), the adapted module's output; ``task_ids``: an adapter index or one per example (B,)."""
        if self.disable_adapters:
            return x
        if isinstance(task_ids, int):
            name = self.router.tasks[task_ids]
            if name not in self.adalink_bank or name in self.merged_adapters:
                return x  # the base (or a link already folded into the weights)
            bank = self.adalink_bank[name]
            assert isinstance(bank, AdaLinkBank)
            return bank(x, 0)
        return self._mixed(x, task_ids)

    def _mixed(self, x: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        banks = [self.adalink_bank[n] if n in self.adalink_bank else None for n in self.router.tasks]  # noqa: SIM401
        present = [b for b in banks if isinstance(b, AdaLinkBank)]
        if not present:
            return x
        template = present[0]
        activations = {b.activation for b in present}
        if len(activations) > 1:
            raise UsageError(
                f"adapter_names mixes AdaLink adapters with different activations {sorted(map(str, activations))}; "
                "a mixed batch runs one op for all of them: use adapters of one activation, or one adapter per call."
            )
        rank = max(b.rank for b in present)
        down = torch.cat([_padded(b, rank, template, "down") for b in banks])  # (A + 1, d, r)
        up = torch.cat([_padded(b, rank, template, "up") for b in banks])  # (A + 1, r, d)
        return torch.func.functional_call(template, {"down": down, "up": up}, (x, task_ids))

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise NotImplementedError("AdaLink folds every site of an adapter at once: call merge_adapter() on the model.")

    def unmerge(self) -> None:
        raise NotImplementedError("AdaLink unfolds every site at once: call unmerge_adapter() on the model.")

    def extra_repr(self) -> str:
        return f"adapters={list(self.adalink_bank)}"


def _padded(bank: nn.Module | None, rank: int, template: AdaLinkBank, which: str) -> torch.Tensor:
    """One adapter's ``down`` (1, d, r) or ``up`` (1, r, d) zero-padded to ``rank``; zeros where it has none."""
    if not isinstance(bank, AdaLinkBank):
        shape = (1, template.dim, rank) if which == "down" else (1, rank, template.dim)
        return template.down.new_zeros(shape)
    weight = getattr(bank, which)[:1]
    missing = rank - bank.rank
    if not missing:
        return weight
    return F.pad(weight, (0, missing)) if which == "down" else F.pad(weight, (0, 0, 0, missing))


register()  # this module may have been the first to import peft; see peft_registration
