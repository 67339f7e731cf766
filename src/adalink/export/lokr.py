"""KronA as a peft LoKr adapter with undecomposed factors: ``ΔW = s · A ⊗ B`` is LoKr's ``lokr_w1 ⊗ lokr_w2``
scaled by ``alpha / r``.

Both use the same factor shapes (:func:`adalink.methods.krona.factorization` is LoKr's rule, with ``factor`` as
``decompose_factor``). LoKr keeps ``w2`` whole only when ``r ≥ max(w2 shape) / 2`` (and ``w1`` whole without
``decompose_both``), so ``r`` is the smallest such rank over the adapted layers and ``alpha = s · r``; ``r`` then only
sets the scaling. KronA's dropout on the layer input has no LoKr counterpart (LoKr's dropouts act on ranks and whole
modules) and is not exported: outputs are equal in evaluation, where it is off.
"""

from __future__ import annotations

import math

import torch

from .adapter import AdaptedModel, ExportError, PeftAdapter, tuner_key
from .lora import linear_sites

__all__ = ["krona_to_lokr"]


def krona_to_lokr(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``krona`` as a peft LoKr."""
    config = model.peft_config
    sites = linear_sites(model)
    odd = [s.path + (f" ({s.label} slice)" if s.label else "") for s in sites if s.transposed or s.label]
    if odd:
        raise ExportError(
            f"Cannot export this KronA to peft's LoKr: {odd} are transformers Conv1D layers or slices of a fused "
            "layer, and LoKr adapts whole nn.Linear layers only. Use `adalink merge` to fold it into a plain "
            "checkpoint instead."
        )
    tensors: dict[str, torch.Tensor] = {}
    rank = 1
    for site in sites:
        bank = model.adapter_modules[site.key]
        tensors[tuner_key(site.path, "lokr_w1")] = bank.A[task].detach().clone()  # (a_out, a_in)
        tensors[tuner_key(site.path, "lokr_w2")] = bank.B[task].detach().clone()  # (b_out, b_in)
        rank = max(rank, math.ceil(max(bank.B.shape[1:]) / 2))
    peft_config = {
        "peft_type": "LOKR",
        "r": rank,
        "alpha": config.scale * rank,  # type: ignore[attr-defined]
        "target_modules": [s.path for s in sites],
        "decompose_both": False,
        "decompose_factor": config.factor,  # type: ignore[attr-defined]
        "rank_dropout": 0.0,
        "module_dropout": 0.0,
        "use_effective_conv2d": False,
    }
    return PeftAdapter(peft_config, tensors)
