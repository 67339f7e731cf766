"""Fold an identity-activation AdaLink into the weights of the module it adapts (paper §3.3, configurable serving).

With ``f = identity`` the AdaLink is linear: ``E' = E (I + M)`` with ``M = W_down · W_up`` (d×d). So
- a vocabulary table becomes ``E · (I + M)`` and every lookup returns the adapted embedding at zero serving cost;
- a Linear ``y = x Wᵀ + b`` becomes ``W' = (I + M)ᵀ W`` and ``b' = b (I + M)``.
A new Parameter replaces the old one, so anything that shared it (a tied output head, the other side of an
encoder-decoder) keeps the original weights.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ...errors import FoldError
from .sites import Site

__all__ = ["FoldError", "check_foldable", "fold_site"]


def check_foldable(site: Site) -> None:
    """Raise :class:`FoldError` unless ``site.module`` is an Embedding or a Linear."""
    if not isinstance(site.module, (nn.Embedding, nn.Linear)):
        raise FoldError(
            f"Cannot fold the AdaLink of modality {site.modality!r} into {site.path!r}: it is a "
            f"{type(site.module).__name__}, and folding is exact only into an Embedding (vocabulary lookup) or a "
            f"Linear. Point the modality at its last Linear (e.g. '{site.path}.<last linear>') or serve it unmerged."
        )


def fold_site(model: nn.Module, site: Site, linear_map: torch.Tensor) -> None:
    """Fold ``E ↦ E (I + linear_map)`` into ``site.module`` in place; ``linear_map`` is (d, d) float64."""
    check_foldable(site)
    module = site.module
    assert isinstance(module, (nn.Embedding, nn.Linear))  # check_foldable
    old_weight: torch.Tensor = module.weight
    if isinstance(module, nn.Embedding):
        folded = old_weight.double() + old_weight.double() @ linear_map
        module.weight = nn.Parameter(folded.to(old_weight.dtype), requires_grad=old_weight.requires_grad)
    else:  # nn.Linear, by check_foldable
        folded = old_weight.double() + linear_map.T @ old_weight.double()
        module.weight = nn.Parameter(folded.to(old_weight.dtype), requires_grad=old_weight.requires_grad)
        if module.bias is not None:
            bias: torch.Tensor = module.bias
            new_bias = bias.double() + bias.double() @ linear_map
            module.bias = nn.Parameter(new_bias.to(bias.dtype), requires_grad=bias.requires_grad)
    _untie_output_head(model, old_weight)


def _untie_output_head(model: nn.Module, old_weight: torch.Tensor) -> None:
    """Keep a head that was tied to the folded table on the original weights, also after save and reload."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or head.weight is not old_weight:
        return
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None) if config is not None else None):
        if cfg is not None and hasattr(cfg, "tie_word_embeddings"):
            # some configs force tying; their reload then unties by value (both tensors are saved)
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                cfg.tie_word_embeddings = False
    tied = getattr(model, "all_tied_weights_keys", None)
    if isinstance(tied, dict):
        head_names = {name for name, p in model.named_parameters(remove_duplicate=False) if p is old_weight}
        for key in [k for k, v in tied.items() if k in head_names or v in head_names]:
            tied.pop(key)
