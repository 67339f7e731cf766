"""Prefix attachment, shared by prefix tuning, MAM and UniPELT (Li & Liang 2021; survey §6).

:func:`attach_prefix` prepends ``n`` trainable key/value positions to every attention layer through the
``transformers`` cache, stacked per task (:class:`PrefixBank`, optionally through the training-time MLP); the method
and its defaults are documented in :mod:`adalink.methods.prefix_tuning`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import DynamicCache, EncoderDecoderCache

from ...errors import ConfigError, UsageError
from ...routing import Router, TaskIds
from .._cache import cache_argument, find_cache
from ..base import Attachment, Handle

__all__ = ["PrefixBank", "attach_prefix", "prefix_geometry"]


def prefix_geometry(model: nn.Module) -> tuple[int, int, int]:
    """(layers, key/value heads, head size) of the attention layers that receive the prefix."""
    config = getattr(model, "config", None)
    if config is None:
        raise ConfigError(f"Prefix tuning needs a transformers model with a config; got {type(model).__name__}.")
    config = config.get_text_config(decoder=True)
    try:
        layers = getattr(config, "num_decoder_layers", None) or config.num_hidden_layers
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    except AttributeError as err:
        raise ConfigError(
            f"Prefix tuning cannot read the attention geometry of {type(model).__name__}: {err}."
        ) from None
    return layers, kv_heads, head_dim


class PrefixBank(nn.Module):
    """Per-task prefixes ``(T, n, L·2·H_kv·d_head)``, optionally produced by a stacked per-task MLP while training.

    With the MLP, ``state_dict`` holds only the prefix it produces (a buffer refreshed at each save), and
    :meth:`materialise` drops the MLP for good (called after loading a saved adapter).
    """

    def __init__(self, tasks: int, n: int, width: int, *, projection: bool, embed_dim: int, hidden: int) -> None:
        super().__init__()
        self.projection = projection
        if projection:  # nn.Embedding / nn.Linear default initialisations, stacked per task
            self.embedding = nn.Parameter(torch.randn(tasks, n, embed_dim))  # P' (T, n, H_kv·d_head)
            self.down = nn.Parameter(_uniform((tasks, embed_dim, hidden), embed_dim))
            self.down_bias = nn.Parameter(_uniform((tasks, hidden), embed_dim))
            self.up = nn.Parameter(_uniform((tasks, hidden, width), hidden))
            self.up_bias = nn.Parameter(_uniform((tasks, width), hidden))
            self.register_buffer("prefix", torch.zeros(tasks, n, width))  # what is saved
            self.register_state_dict_post_hook(_saved_form)
        else:
            self.prefix = nn.Parameter(torch.randn(tasks, n, width))

    def forward(self, ids: TaskIds, batch: int) -> torch.Tensor:
        """Prefixes for ``ids`` (one task index or ``(B,)`` indices): ``(B, n, width)``."""
        if self.projection and isinstance(ids, torch.Tensor):  # each task's MLP once, not once per example
            tasks, per_example = torch.unique(ids, return_inverse=True)
            prefix = self._projected(tasks)[per_example]
        elif self.projection:
            prefix = self._projected(ids)
        else:
            prefix = self.prefix[ids]
        return prefix.expand(batch, -1, -1) if prefix.dim() == 2 else prefix

    def _projected(self, ids: TaskIds) -> torch.Tensor:
        """The MLP's prefixes for one task ``(n, width)`` or for distinct tasks ``(U, n, width)``."""
        hidden = torch.tanh(_bmm(self.embedding[ids], self.down[ids]) + self.down_bias[ids].unsqueeze(-2))
        return _bmm(hidden, self.up[ids]) + self.up_bias[ids].unsqueeze(-2)

    @torch.no_grad()
    def refresh(self) -> None:
        if self.projection:
            self.prefix.copy_(self._projected(torch.arange(self.prefix.shape[0], device=self.prefix.device)))

    def materialise(self) -> None:
        """Replace the MLP by the prefix it produced (the buffer, e.g. just loaded from a file)."""
        if not self.projection:
            return
        prefix = self._buffers.pop("prefix").detach().clone()
        for name in ("embedding", "down", "down_bias", "up", "up_bias"):
            delattr(self, name)
        self.projection = False
        self.prefix = nn.Parameter(prefix)


def _saved_form(module: PrefixBank, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict post-hook: with the MLP, save the prefix it produces now and drop the MLP's own tensors."""
    del local_metadata
    if not module.projection:
        return
    module.refresh()
    for name in ("embedding", "down", "down_bias", "up", "up_bias"):
        state_dict.pop(f"{prefix}{name}", None)


def _uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    bound = fan_in**-0.5
    return torch.empty(shape).uniform_(-bound, bound)


def _bmm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...nd,...dh->...nh", x, w)


def attach_prefix(
    model: nn.Module,
    router: Router,
    num_virtual_tokens: int,
    *,
    num_tasks: int = 1,
    projection: bool = False,
    hidden: int = 512,
) -> Attachment:
    """Prepend ``num_virtual_tokens`` trainable key/value positions to every attention layer of ``model``.

    Returns an :class:`Attachment` whose ``modules`` is ``{"bank": PrefixBank}``; its ``loaded`` callback drops the
    MLP after saved tensors are loaded. Composite methods (MAM, UniPELT) merge it with their other attachments.
    """
    layers, kv_heads, head_dim = prefix_geometry(model)
    embed_dim = kv_heads * head_dim  # P' has one layer's key width, as in Hugging Face peft
    width = layers * 2 * kv_heads * head_dim
    bank = PrefixBank(
        num_tasks, num_virtual_tokens, width, projection=projection, embed_dim=embed_dim, hidden=hidden
    ).to(model.get_input_embeddings().weight.device)
    encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
    hook = _prefix_hook(model, bank, router, (num_virtual_tokens, layers, kv_heads, head_dim), encoder_decoder)
    handles: list[Handle] = [model.register_forward_pre_hook(hook, with_kwargs=True)]
    return Attachment(nn.ModuleDict({"bank": bank}), handles, {}, loaded=bank.materialise)


def _prefix_hook(
    model: nn.Module, bank: PrefixBank, router: Router, shape: tuple[int, ...], encoder_decoder: bool
) -> Callable[..., tuple[tuple, dict] | None]:
    n, layers, kv_heads, head_dim = shape
    positional = [
        p.name
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    mask_key = "decoder_attention_mask" if encoder_decoder else "attention_mask"
    where = f"the prefix of {type(model).__name__}"
    cache_key = cache_argument(model.forward)

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if router.disabled:
            return None
        kwargs = {**dict(zip(positional, args, strict=False)), **kwargs}
        past = find_cache(kwargs)
        if past is None or past.get_seq_length() == 0:  # first call: the prefix enters the cache
            if past is not None and not isinstance(past, (DynamicCache, EncoderDecoderCache)):
                raise UsageError(
                    f"Prefix tuning fills a DynamicCache; got a {type(past).__name__}. Use the default dynamic cache."
                )
            batch = _batch_size(kwargs)
            prefix = bank(router.ids_for(batch, where), batch)  # (B, n, L·2·H·d)
            prefix = prefix.view(batch, n, layers, 2, kv_heads, head_dim).permute(
                2, 3, 0, 4, 1, 5
            )  # (L, 2, B, H, n, d)
            cache = DynamicCache(ddp_cache_data=list(zip(prefix[:, 0], prefix[:, 1], strict=True)))
            kwargs.pop("past_key_values", None)  # (an empty cache under the old name: replaced, under the new one)
            kwargs[cache_key] = EncoderDecoderCache(cache, DynamicCache()) if encoder_decoder else cache
        mask = kwargs.get(mask_key)
        if mask is not None:
            if mask.dim() != 2:
                raise UsageError(f"Prefix tuning lengthens 2-D attention masks only; got a {mask.dim()}-D {mask_key}.")
            kwargs[mask_key] = F.pad(mask, (n, 0), value=1)
        if kwargs.get("position_ids") is not None and not encoder_decoder:
            kwargs["position_ids"] = kwargs["position_ids"] + n
        return (), kwargs

    return hook


def _batch_size(kwargs: dict) -> int:
    for key in ("input_ids", "inputs_embeds", "decoder_input_ids", "decoder_inputs_embeds", "labels"):
        if isinstance(kwargs.get(key), torch.Tensor):
            return kwargs[key].shape[0]
    outputs = kwargs.get("encoder_outputs")
    if outputs is not None:
        return outputs[0].shape[0]
    raise UsageError("Prefix tuning could not find the batch size (no input_ids, inputs_embeds or encoder_outputs).")
