"""Fold an identity-activation AdaLink into the weights of the module it adapts (paper §3.3, configurable serving).

With ``f = identity`` the AdaLink is linear: ``E' = E (I + M)`` with ``M = W_down · W_up`` (d×d). So
- a vocabulary table becomes ``E · (I + M)`` and every lookup returns the adapted embedding at zero serving cost;
- a Linear ``y = x Wᵀ + b`` becomes ``W' = (I + M)ᵀ W`` and ``b' = b (I + M)``;
- the output link on the LM head's input, ``y = h (I + M) Wᵀ + b``, becomes ``W' = W (I + M)ᵀ = W + W·Mᵀ`` (V×d),
  ``b`` unchanged.
A new Parameter replaces the old one, so anything that shared it (a tied output head, the other side of an
encoder-decoder) keeps the original weights. **Tied heads are untied**: when the head and the input table share one
weight (``tie_word_embeddings=True``, SmolLM2, GPT-2, T5), folding either link gives the folded module its own
weight, leaves the other on the original, and sets ``tie_word_embeddings=False`` (dropping the tie from the model's
tied-weight keys) so that a save and reload keeps them apart. The merged checkpoint then stores the table twice
(V·d more parameters); folding never changes the input embeddings through the head, nor the head through the table.

Memory: the new weight is written in the old one's dtype, a block of rows at a time, each block accumulated in float32
(float64 for a float64 weight). Besides the new weight, folding needs the (d, d) map in float32 and one block's working
copies, at most ``_BLOCK_FRACTION`` of the weight's bytes: a 150k × 4096 vocabulary never exists in float64, and the
extra peak stays under 10 % of the table (measured in tests/methods/adalink/test_folding.py). The result matches the
float64 computation to float32 rounding.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ...errors import FoldError
from .sites import Site

__all__ = ["FoldError", "check_foldable", "fold_site"]

_BLOCK_FRACTION = 1 / 64  # the working copies of one block of rows take at most this share of the weight's bytes


def check_foldable(site: Site) -> None:
    """Raise :class:`FoldError` unless ``site.module`` is an Embedding or a Linear (the output site: a Linear)."""
    if site.boundary == "output" and not isinstance(site.module, nn.Linear):
        raise FoldError(f"Cannot fold the output AdaLink into {site.path!r}: it is not an nn.Linear.")
    if not isinstance(site.module, (nn.Embedding, nn.Linear)):
        raise FoldError(
            f"Cannot fold the AdaLink of modality {site.modality!r} into {site.path!r}: it is a "
            f"{type(site.module).__name__}, and folding is exact only into an Embedding (vocabulary lookup) or a "
            f"Linear. Point the modality at its last Linear (e.g. '{site.path}.<last linear>') or serve it unmerged."
        )


def fold_site(model: nn.Module, site: Site, linear_map: torch.Tensor) -> None:
    """Fold ``E ↦ E (I + linear_map)`` into ``site.module`` in place; ``linear_map`` is (d, d). For the output site,
    ``h ↦ h (I + linear_map)`` on the head's input."""
    check_foldable(site)
    if site.boundary == "output":
        _fold_head_input(model, site, linear_map)
        return
    module = site.module
    assert isinstance(module, (nn.Embedding, nn.Linear))  # check_foldable
    old_weight: torch.Tensor = module.weight
    with torch.no_grad():
        if isinstance(module, nn.Embedding):
            folded = _plus_times(old_weight, linear_map)  # E + E·M, (V, d)
        else:  # nn.Linear y = x Wᵀ + b, by check_foldable: Wᵀ + Wᵀ·M, over the rows of Wᵀ
            folded = _plus_times(old_weight.T, linear_map).T
        module.weight = nn.Parameter(folded, requires_grad=old_weight.requires_grad)
        if isinstance(module, nn.Linear) and module.bias is not None:
            bias: torch.Tensor = module.bias
            new_bias = _plus_times(bias.unsqueeze(0), linear_map).squeeze(0)
            module.bias = nn.Parameter(new_bias, requires_grad=bias.requires_grad)
    _untie_output_head(model, old_weight)


def _fold_head_input(model: nn.Module, site: Site, linear_map: torch.Tensor) -> None:
    """``y = h (I + M) Wᵀ + b = h (W + W·Mᵀ)ᵀ + b``: the head's rows ``W`` (V, d) become ``W + W·Mᵀ``; ``b`` stays."""
    module = site.module
    assert isinstance(module, nn.Linear)  # check_foldable
    old_weight: torch.Tensor = module.weight
    with torch.no_grad():
        module.weight = nn.Parameter(_plus_times(old_weight, linear_map.T), requires_grad=old_weight.requires_grad)
    if any(p is old_weight for p in model.parameters()):  # it was tied (to the input table): keep that one as it was
        _forget_tying(model, {name for name, p in model.named_parameters() if p is module.weight})


def _plus_times(x: torch.Tensor, linear_map: torch.Tensor) -> torch.Tensor:
    """``x + x·linear_map`` for x (N, d): a new tensor laid out like ``x``, in its dtype, a block of rows at a time."""
    acc = torch.promote_types(x.dtype, torch.float32)  # accumulate in float32 at least
    m = linear_map.to(device=x.device, dtype=acc)  # (d, d)
    out = torch.empty_like(x)  # keeps x's strides: a transposed Linear weight comes back contiguous after .T
    copies = 1 if x.dtype == acc else 2  # the product, and x's block cast to acc unless it already is
    per_row = copies * x.shape[1] * torch.finfo(acc).bits // 8
    rows = max(1, int(x.numel() * x.element_size() * _BLOCK_FRACTION) // per_row)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows].detach().to(acc)  # (n, d); a view when x is already in acc
        out[start : start + rows] = torch.addmm(block, block, m)  # block + block·M
    return out


def _untie_output_head(model: nn.Module, old_weight: torch.Tensor) -> None:
    """Keep a head that was tied to the folded table on the original weights, also after save and reload."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or head.weight is not old_weight:
        return
    _forget_tying(model, {name for name, p in model.named_parameters(remove_duplicate=False) if p is old_weight})


def _forget_tying(model: nn.Module, names: set[str]) -> None:
    """Untie, in the model's config and tied-weight keys, the parameters ``names`` from what they were tied to."""
    config = getattr(model, "config", None)
    for cfg in (config, getattr(config, "text_config", None) if config is not None else None):
        if cfg is not None and hasattr(cfg, "tie_word_embeddings"):
            # some configs force tying; their reload then unties by value (both tensors are saved)
            with contextlib.suppress(AttributeError, TypeError, ValueError):
                cfg.tie_word_embeddings = False
    tied = getattr(model, "all_tied_weights_keys", None)
    if isinstance(tied, dict):
        for key in [k for k, v in tied.items() if k in names or v in names]:
            tied.pop(key)
