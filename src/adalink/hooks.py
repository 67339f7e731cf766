"""Attach AdaLink to a frozen model through removable forward hooks on module outputs (paper §3.2, "non-intrusive").

Each *site* (a module whose output is adapted, see :mod:`adalink.sites`) gets a forward hook that replaces its output
``E`` by ``E + f(E·W_down)·W_up`` for the task(s) the router holds. Where a caller may bypass the embedding with
``inputs_embeds=``, a forward pre-hook on the model (or on the encoder/decoder stack) adapts those instead. The
blocks, their code and their computation graph are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import AdaLinkConfig
from .errors import FoldError
from .folding import check_foldable, fold_site
from .layer import AdaLinkBank
from .methods.base import Attachment
from .routing import Router
from .sites import Site, resolve_sites

__all__ = ["attach_adalink"]

_UNIFIED = "unified"


def attach_adalink(model: nn.Module, config: AdaLinkConfig, router: Router) -> Attachment:
    sites = resolve_sites(model, config)
    banks = nn.ModuleDict(_build_banks(config, sites))

    def bank_of(site: Site) -> AdaLinkBank:
        return banks[_UNIFIED if config.unified else site.modality]

    handles = []
    for site in sites:
        handles.append(site.module.register_forward_hook(_output_hook(site, bank_of(site), router)))
        if site.embeds_entry is not None:  # callers may bypass the embedding with inputs_embeds=
            hook = _embeds_hook(site, bank_of(site), router)
            handles.append(site.embeds_entry.register_forward_pre_hook(hook, with_kwargs=True))

    def merge(task: int) -> None:
        if not config.is_foldable:
            raise FoldError(
                f"Cannot fold an AdaLink with activation={config.activation!r}: folding is exact only for "
                "the identity activation (activation=None). Serve it unmerged instead."
            )
        for site in sites:  # check every site first so a failure leaves the model untouched
            check_foldable(site)
        for site in sites:
            fold_site(model, site, bank_of(site).linear_map(task))

    def select_tasks(indices: list[int]) -> None:
        for bank in banks.values():
            bank.select_tasks(indices)

    touched = {site.path: site.module for site in sites}
    return Attachment(banks, handles, touched, merge=merge, select_tasks=select_tasks)


def _build_banks(config: AdaLinkConfig, sites: list[Site]) -> dict[str, AdaLinkBank]:
    kwargs = {"dropout": config.dropout, "activation": config.activation, "init": config.init}
    dims = {site.modality: site.dim for site in sites}
    if config.unified:
        return {_UNIFIED: AdaLinkBank(len(config.tasks), next(iter(dims.values())), config.rank, **kwargs)}
    return {modality: AdaLinkBank(len(config.tasks), dim, config.rank, **kwargs) for modality, dim in dims.items()}


def _output_hook(site: Site, bank: AdaLinkBank, router: Router):
    where = f"the adapted module {site.path!r} (modality {site.modality!r})"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"AdaLink on {site.path!r} expects a tensor output, got {type(output).__name__}.")
        return bank(output, router.ids_for(output.shape[0] if output.dim() > 1 else 1, where))

    return hook


def _embeds_hook(site: Site, bank: AdaLinkBank, router: Router):
    where = f"inputs_embeds for {site.path!r}"

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        embeds = kwargs.get("inputs_embeds")
        if router.disabled or embeds is None:
            return None
        kwargs["inputs_embeds"] = bank(embeds, router.ids_for(embeds.shape[0], where))
        return args, kwargs

    return hook
