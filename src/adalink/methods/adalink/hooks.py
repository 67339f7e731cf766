"""The forward hooks that apply an AdaLink bank at a site (paper §3.2, "non-intrusive").

Each *site* (a module whose output is adapted, see :mod:`.sites`) gets a forward hook that replaces its output ``E``
by ``E + f(E·W_down)·W_up`` for the task(s) the router holds. The blocks, their code and their computation graph are
untouched.

**Embeddings are adapted exactly once, where they enter the model.** An input-embedding site has an *entry*: the
module that accepts ``inputs_embeds=`` in place of calling the embedding (the model itself, or each encoder/decoder
stack). The rule:

- The embedding module's output is adapted only when the model's own code calls it: while the entry, or a module
  between the entry and the embedding (e.g. ``model.transformer``), is running. ``input_ids`` are adapted at the
  lookup, and embeddings that the model makes and hands on inwards (LLaVA's fused sequence) are not adapted again.
- ``inputs_embeds=`` given to the entry from outside are adapted there, once, with that call's task routing; they
  are always read as *base* embeddings. A nested call of the entry (its own code calling it again) leaves them be.
- Called from outside, the embedding module is the plain base embedding: ``model.get_input_embeddings()(ids)``
  returns the same tensor with the adapter on, off (``disable_adapter()``) or folded away, so embeddings made by
  hand (and anything derived from them: ``clone()``, concatenation with other vectors, a soft prompt) pass through
  the adapter exactly once when they are fed in. No tensor is marked or recognised: what counts is only whether
  the call happens inside the model's forward.

How deep the calls of those modules are nested is a ``ContextVar`` per site, so concurrent threads (or contexts)
never see each other's calls. A site named by a module path (a projector) has no entry: its output is always
adapted.

**The output site** (``boundaries`` with ``"output"``) is the LM head's input: a forward pre-hook replaces the hidden
states ``h`` the head is called with by ``h + f(dropout(h)·W_down)·W_up``. It has no entry either: every call of the
head is adapted, also one made from outside the model, which is what the head folded into its weight computes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
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
    """Adapt ``site``'s output (and ``inputs_embeds=`` that bypass it), or for the output site its input, with
    ``bank``; returns the handles."""
    if site.boundary == "output":  # the head's input: always adapted
        return [site.module.register_forward_pre_hook(_input_hook(site, bank, router))]
    if site.embeds_entry is None:  # a plain module output (a projector): always adapted
        return [site.module.register_forward_hook(_output_hook(site, bank, router, depth=None))]
    depth: ContextVar[int] = ContextVar(f"adalink_inside_{site.path}_{id(bank)}", default=0)
    handles: list[Handle] = []
    for module in _path_to(site.embeds_entry, site.module):
        # prepend: count the call before any other pre-hook can raise, so the always-called exit hook stays paired
        enter = _enter_hook(site, bank, router, depth) if module is site.embeds_entry else _count_hook(depth)
        handles.append(module.register_forward_pre_hook(enter, with_kwargs=True, prepend=True))
        handles.append(module.register_forward_hook(_exit_hook(depth), always_call=True))
    handles.append(site.module.register_forward_hook(_output_hook(site, bank, router, depth)))
    return handles


def _path_to(entry: nn.Module, target: nn.Module) -> list[nn.Module]:
    """``entry`` and the modules below it that lead to ``target`` (excluded); just ``entry`` if none does."""
    name = next((name for name, m in entry.named_modules() if m is target), "")
    modules, current = [entry], entry
    for part in name.split(".")[:-1] if name else []:
        current = current.get_submodule(part)
        modules.append(current)
    return modules


def _output_hook(
    site: Site, bank: Link, router: Router, depth: ContextVar[int] | None
) -> Callable[..., torch.Tensor | None]:
    where = f"the adapted module {site.path!r} (modality {site.modality!r})"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled or (depth is not None and depth.get() == 0):  # called from outside: the base embedding
            return None
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"AdaLink on {site.path!r} expects a tensor output, got {type(output).__name__}.")
        return bank(output, router.ids_for(output.shape[0] if output.dim() > 1 else 1, where))

    return hook


def _input_hook(site: Site, bank: Link, router: Router) -> Callable[..., tuple | None]:
    where = f"the input of the output head {site.path!r}"

    def hook(module: nn.Module, args: tuple) -> tuple | None:
        if router.disabled:
            return None
        if not args or not isinstance(args[0], torch.Tensor):
            raise TypeError(f"AdaLink on the input of {site.path!r} expects the hidden states as its first argument.")
        hidden = args[0]  # (B, T, d)
        return (bank(hidden, router.ids_for(hidden.shape[0] if hidden.dim() > 1 else 1, where)), *args[1:])

    return hook


def _enter_hook(site: Site, bank: Link, router: Router, depth: ContextVar[int]) -> Callable[..., Any]:
    where = f"inputs_embeds for {site.path!r}"

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        outer = depth.get() == 0
        depth.set(depth.get() + 1)
        embeds = kwargs.get("inputs_embeds")
        if not outer or router.disabled or embeds is None:  # nested: the model's own, already adapted, embeddings
            return None
        kwargs["inputs_embeds"] = bank(embeds, router.ids_for(embeds.shape[0], where))
        return args, kwargs

    return hook


def _count_hook(depth: ContextVar[int]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        depth.set(depth.get() + 1)

    return hook


def _exit_hook(depth: ContextVar[int]) -> Callable[..., None]:
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        depth.set(max(depth.get() - 1, 0))

    return hook
