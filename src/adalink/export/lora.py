"""LoRA (``lora``, ``lora_all``) and DoRA as peft LoRA adapters (DoRA: ``use_dora=True``).

Our stacked per-task ``A`` (T, r, in) and ``B`` (T, out, r) are peft's ``lora_A.weight`` (r, in) and
``lora_B.weight`` (out, r) of one task, with the same ``r``, ``lora_alpha`` and ``lora_dropout``; DoRA's magnitude
(T, out) is ``lora_magnitude_vector`` (out,). GPT-2's ``Conv1D`` layers set ``fan_in_fan_out`` (peft corrects it
per layer where a model mixes both kinds).

A fused layer adapted in slices (GPT-2's ``c_attn`` with targets q, v: one LoRA per third) becomes one peft LoRA on
the whole layer of rank ``k·r`` (k slices): ``A`` stacks the slices' ``A``, ``B`` is block-diagonal into their output
columns and zero elsewhere, and ``rank_pattern`` / ``alpha_pattern`` give that layer ``k·r`` and ``k·α`` so the
scaling ``α / r`` is unchanged. The untouched slice gets a zero update (DoRA: its magnitude is the row norm of the
weight, so its ratio is one). The outputs are equal; peft then counts the zeros as trainable parameters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch

from ..methods.shared.linear import LinearSite, find_linear_sites
from .adapter import AdaptedModel, PeftAdapter, tuner_key

__all__ = ["dora_to_lora", "linear_sites", "lora_to_lora", "sites_by_layer"]


def linear_sites(model: AdaptedModel) -> list[LinearSite]:
    """The linear sites a LoRA-family config (``targets``, ``roles``) adapts, as its ``attach`` found them."""
    config = model.peft_config
    return find_linear_sites(model.base_model, config.targets, config.roles, method=config.method)  # type: ignore[attr-defined]


def sites_by_layer(sites: Sequence[LinearSite]) -> dict[str, list[LinearSite]]:
    """Sites grouped by layer path, in model order (a fused layer adapted in slices has several)."""
    grouped: dict[str, list[LinearSite]] = {}
    for site in sites:
        grouped.setdefault(site.path, []).append(site)
    return grouped


def lora_to_lora(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``lora`` / ``lora_all`` as a peft LoRA."""
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    sites = linear_sites(model)
    for path, slices in sites_by_layer(sites).items():
        banks = [model.adapter_modules[s.key] for s in slices]
        a, b = _stack(slices, [bank.A[task] for bank in banks], [bank.B[task] for bank in banks])
        tensors[tuner_key(path, "lora_A.weight")], tensors[tuner_key(path, "lora_B.weight")] = a, b
        ranks[path] = len(slices)
    return PeftAdapter(_lora_config(model, ranks, sites), tensors)


def dora_to_lora(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``dora`` as a peft LoRA with ``use_dora=True``."""
    tensors: dict[str, torch.Tensor] = {}
    ranks: dict[str, int] = {}
    sites = linear_sites(model)
    for path, slices in sites_by_layer(sites).items():
        layers = [model.adapter_modules[s.key] for s in slices]
        a, b = _stack(slices, [la.lora.A[task] for la in layers], [la.lora.B[task] for la in layers])
        magnitude = _layer_weight(slices[0]).norm(dim=1).to(a.dtype)  # (total,): ratio one where not adapted
        for site, layer in zip(slices, layers, strict=True):
            magnitude[site.start : site.start + site.out_features] = layer.magnitude[task].detach()
        tensors[tuner_key(path, "lora_A.weight")], tensors[tuner_key(path, "lora_B.weight")] = a, b
        tensors[tuner_key(path, "lora_magnitude_vector")] = magnitude
        ranks[path] = len(slices)
    return PeftAdapter({**_lora_config(model, ranks, sites), "use_dora": True}, tensors)


def _stack(
    slices: Sequence[LinearSite], a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's (A, B): as they are for a whole layer, else A stacked and B block-diagonal over the slices."""
    if len(slices) == 1 and slices[0].out_features == slices[0].total:
        return a[0].detach().clone(), b[0].detach().clone()
    rank = a[0].shape[0]
    stacked_b = torch.zeros(slices[0].total, rank * len(slices), dtype=b[0].dtype)  # (total, k·r)
    for i, (site, part) in enumerate(zip(slices, b, strict=True)):
        stacked_b[site.start : site.start + site.out_features, i * rank : (i + 1) * rank] = part.detach()
    return torch.cat([part.detach() for part in a]), stacked_b  # (k·r, in), (total, k·r)


def _layer_weight(site: LinearSite) -> torch.Tensor:
    """The whole layer's weight as (out, in), detached."""
    weight = site.module.weight.detach()
    return weight.t() if site.transposed else weight


def _lora_config(model: AdaptedModel, slices_per_layer: dict[str, int], sites: Sequence[LinearSite]) -> dict[str, Any]:
    config = model.peft_config
    rank, alpha = config.rank, config.alpha  # type: ignore[attr-defined]
    fused = {path: k for path, k in slices_per_layer.items() if k > 1}
    return {
        "peft_type": "LORA",
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": config.dropout,  # type: ignore[attr-defined]
        "target_modules": list(slices_per_layer),
        # full-match patterns (peft matches "(.*\.)?(pattern)$"): k slices -> rank k·r at the same α / r
        "rank_pattern": {re.escape(path): k * rank for path, k in fused.items()},
        "alpha_pattern": {re.escape(path): k * alpha for path, k in fused.items()},
        "fan_in_fan_out": any(s.transposed for s in sites),
        "bias": "none",
        "use_dora": False,
        "use_rslora": False,
    }
