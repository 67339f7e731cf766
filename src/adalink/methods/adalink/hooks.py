"""The forward hooks that apply an AdaLink bank at a site (paper §3.2, "non-intrusive").

Each *site* (a module whose output is adapted, see :mod:`.sites`) gets a forward hook that replaces its output ``E``
by ``E + f(E·W_down)·W_up`` for the task(s) the router holds. Where a caller may bypass the embedding with
``inputs_embeds=``, a forward pre-hook on the model (or on the encoder/decoder stack) adapts those instead. The
blocks, their code and their computation graph are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ...routing import Router, TaskIds
from ..base import Handle
from .sites import Site

__all__ = ["Link", "hook_site"]

# What a hook applies: an AdaLinkBank, or anything called the same way (x, task ids) -> adapted x.
Link = Callable[[torch.Tensor, TaskIds], torch.Tensor]


def hook_site(site: Site, bank: Link, router: Router) -> list[Handle]:
    """Adapt ``site``'s output (and ``inputs_embeds=`` that bypass it) with ``bank``; returns the handles."""
    handles: list[Handle] = [site.module.register_forward_hook(_output_hook(site, bank, router))]
    if site.embeds_entry is not None:  # callers may bypass the embedding with inputs_embeds=
        hook = _embeds_hook(site, bank, router)
        handles.append(site.embeds_entry.register_forward_pre_hook(hook, with_kwargs=True))
    return handles


def _output_hook(site: Site, bank: Link, router: Router) -> Callable[..., torch.Tensor | None]:
    where = f"the adapted module {site.path!r} (modality {site.modality!r})"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"AdaLink on {site.path!r} expects a tensor output, got {type(output).__name__}.")
        return bank(output, router.ids_for(output.shape[0] if output.dim() > 1 else 1, where))

    return hook


def _embeds_hook(site: Site, bank: Link, router: Router) -> Callable[..., Any]:
    where = f"inputs_embeds for {site.path!r}"

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        embeds = kwargs.get("inputs_embeds")
        if router.disabled or embeds is None:
            return None
        kwargs["inputs_embeds"] = bank(embeds, router.ids_for(embeds.shape[0], where))
        return args, kwargs

    return hook
