"""LayerNorm tuning as a peft LN_TUNING adapter.

peft keeps a tuned copy of each norm (``ln_tuning_layers``) and saves its whole ``weight`` / ``bias``; we keep only
the deltas on the frozen norm (``W + Δ`` through a parametrisation). The export writes ``γ + Δγ`` and ``β + Δβ``
under peft's names for every norm tensor that carries a delta, and ``target_modules`` lists the norms' full paths
(so BERT's ``LayerNorm`` needs no name map in peft).
"""

from __future__ import annotations

import torch
from torch.nn.utils import parametrize

from .adapter import AdaptedModel, PeftAdapter, tuner_key

__all__ = ["ln_tuning_to_peft"]


def ln_tuning_to_peft(model: AdaptedModel, task: int) -> PeftAdapter:
    """``ln_tuning`` (a single-task method: ``task`` is 0) as a peft LN_TUNING adapter."""
    del task
    deltas = model.adapter_modules  # keyed by the tuned tensor's dotted path, dots as "__"
    tensors: dict[str, torch.Tensor] = {}
    norms: list[str] = []
    for path, module in model.base_model.named_modules():
        for name in ("weight", "bias"):
            key = f"{path}.{name}".replace(".", "__")
            if key not in deltas or not parametrize.is_parametrized(module, name):
                continue
            base = module.parametrizations[name].original.detach()  # the frozen tensor, without the delta
            tensors[tuner_key(path, f"ln_tuning_layers.{name}")] = (base + deltas[key].delta.detach()).to(base.dtype)
            norms.append(path)
    return PeftAdapter({"peft_type": "LN_TUNING", "target_modules": list(dict.fromkeys(norms))}, tensors)
