"""Prompt tuning: trainable soft tokens prepended to the input embeddings (Lester et al. 2021; survey §6).

The frozen model reads ``[P; E(x)]`` instead of ``E(x)``, with ``P`` (n×d) one soft prompt per task. With
``residual=True`` the prompt is re-parametrised as in the AdaLink paper (§4.1.2, after Razdaibiedina et al. 2023):
``P' = P + LN(ReLU(P·W_down + b_down)·W_up + b_up)``, one small MLP per task, which stabilises training.

Prompts are stacked ``(T, n, d)`` and gathered per example (``P[task_ids]``), so a batch that mixes tasks runs one
forward. The method attaches as a small input wrapper: a forward pre-hook on the model (on the encoder stack of an
encoder-decoder model) turns ``input_ids`` into ``inputs_embeds``, prepends the prompt and lengthens
``attention_mask``, ``token_type_ids``, ``position_ids`` and token-level ``labels`` (with -100). During
``generate()`` the prompt enters the cache at the first step; later steps only lengthen the mask (and shift given
positions) by ``n``. For T5 a second pre-hook lengthens the decoder's cross-attention mask.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..routing import Router, TaskIds
from ._cache import find_cache
from .base import Attachment, Handle, MethodConfig, register_method

__all__ = ["PromptBank", "PromptTuningConfig", "attach_prompt"]

_INITS = ("vocab", "random")


@register_method
@dataclass
class PromptTuningConfig(MethodConfig):
    """Soft prompt length, initialisation and the optional residual re-parametrisation."""

    method: ClassVar[str] = "prompt_tuning"
    display_name: ClassVar[str] = "Prompt tuning"
    mergeable: ClassVar[bool] = False  # it lengthens the input: there is no weight to fold it into
    identity_at_init: ClassVar[bool] = False  # the prepended tokens change the outputs from the first step
    default_lr: ClassVar[float] = 3e-2  # AdamW; Lester et al. use 0.3 with Adafactor (§3), far above full tuning
    source: ClassVar[str] = "Lester et al. 2021, §2-3; Lialin et al. 2023 (survey), §6; AdaLink paper §4.1.2"

    num_virtual_tokens: int = 20  # n, soft tokens per task (Lester et al. §3: 20-100; the AdaLink paper uses 64)
    init: str = "random"  # "random": U(-0.5, 0.5) (Lester §3, peft's default); "vocab": sampled embedding-table rows
    residual: bool = False  # residual MLP re-parametrisation of the prompt (AdaLink paper §4.1.2)
    residual_hidden: int = 256  # bottleneck width of that MLP
    dropout: float = 0.0  # on the prompt during training (the AdaLink paper uses 0.05)
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one prompt per task, routed per example

    def validate(self) -> None:
        self.check_positive_int("num_virtual_tokens")
        self.check_choice("init", _INITS)
        if not isinstance(self.residual, bool):
            raise self.bad("residual", self.residual, "True or False")
        self.check_positive_int("residual_hidden")
        self.check_probability("dropout")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        return attach_prompt(model, self, router)


class PromptBank(nn.Module):
    """One soft prompt per task, stacked ``(T, n, d)``, with the optional per-task residual MLP (also stacked)."""

    def __init__(self, config: PromptTuningConfig, embedding: nn.Embedding) -> None:
        super().__init__()
        tasks, n, d, h = len(config.tasks), config.num_virtual_tokens, embedding.embedding_dim, config.residual_hidden
        table = embedding.weight.detach()
        if config.init == "vocab":
            rows = torch.randint(0, table.shape[0], (tasks, n), device=table.device)
            init = table[rows].float().clone()
        else:
            init = torch.empty(tasks, n, d, device=table.device).uniform_(-0.5, 0.5)
        self.prompt = nn.Parameter(init)  # (T, n, d)
        self.residual = config.residual
        if config.residual:  # nn.Linear's default initialisation, stacked per task
            self.down = nn.Parameter(_uniform((tasks, d, h), d))
            self.down_bias = nn.Parameter(_uniform((tasks, h), d))
            self.up = nn.Parameter(_uniform((tasks, h, d), h))
            self.up_bias = nn.Parameter(_uniform((tasks, d), h))
            self.norm_weight = nn.Parameter(torch.ones(tasks, d))
            self.norm_bias = nn.Parameter(torch.zeros(tasks, d))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, ids: TaskIds, batch: int) -> torch.Tensor:
        """Prompts for a batch: ``ids`` is one task index or ``(B,)`` indices. Returns ``(B, n, d)``."""
        prompt = self.prompt[ids]  # (n, d) or (B, n, d)
        if self.residual:
            hidden = torch.relu(_bmm(prompt, self.down[ids]) + self.down_bias[ids].unsqueeze(-2))  # (..., n, h)
            out = _bmm(hidden, self.up[ids]) + self.up_bias[ids].unsqueeze(-2)  # (..., n, d)
            out = F.layer_norm(out, out.shape[-1:])
            prompt = prompt + out * self.norm_weight[ids].unsqueeze(-2) + self.norm_bias[ids].unsqueeze(-2)
        prompt = self.dropout(prompt)
        return prompt.expand(batch, -1, -1) if prompt.dim() == 2 else prompt  # (B, n, d)


def _uniform(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
    bound = fan_in**-0.5
    return torch.empty(shape).uniform_(-bound, bound)


def _bmm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...nd,...dh->...nh", x, w)


def attach_prompt(model: nn.Module, config: PromptTuningConfig, router: Router) -> Attachment:
    """Prepend the soft prompt through removable pre-hooks (see the module docstring)."""
    embedding = model.get_input_embeddings()
    bank = PromptBank(config, embedding).to(embedding.weight.device)
    n = config.num_virtual_tokens
    encoder_decoder = bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))
    entry = model.get_encoder() if encoder_decoder else model
    handles: list[Handle] = [
        entry.register_forward_pre_hook(_input_hook(entry, bank, embedding, router, n), with_kwargs=True)
    ]
    if encoder_decoder:  # the decoder attends over the n extra encoder states too
        decoder = model.get_decoder()
        handles.append(decoder.register_forward_pre_hook(_cross_mask_hook(router, n), with_kwargs=True))
    return Attachment(nn.ModuleDict({"bank": bank}), handles, {})


def _input_hook(
    entry: nn.Module, bank: PromptBank, embedding: nn.Module, router: Router, n: int
) -> Callable[..., tuple[tuple, dict] | None]:
    positional = [
        p.name
        for p in inspect.signature(entry.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    where = f"the soft prompt of {type(entry).__name__}"

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if router.disabled:
            return None
        kwargs = {**dict(zip(positional, args, strict=False)), **kwargs}
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() != 2:
            raise UsageError(
                f"Prompt tuning lengthens 2-D attention masks only; got a {mask.dim()}-D mask (a static or compiled "
                "cache builds 4-D masks: use the default dynamic cache with prompt tuning)."
            )
        past = find_cache(kwargs)
        if past is not None and past.get_seq_length() > 0:  # a generation step: the prompt is in the cache already
            _lengthen(kwargs, n)
            return (), kwargs
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:
            embeds = embedding(kwargs["input_ids"])  # (B, L, d)
        batch, length = embeds.shape[:2]
        prompt = bank(router.ids_for(batch, where), batch).to(embeds.dtype)  # (B, n, d)
        kwargs["inputs_embeds"] = torch.cat([prompt, embeds], dim=1)  # (B, n + L, d)
        kwargs["input_ids"] = None
        _lengthen(kwargs, n, first=True)
        labels = kwargs.get("labels")
        if isinstance(labels, torch.Tensor) and labels.dim() == 2 and labels.shape[1] == length:  # token labels
            kwargs["labels"] = F.pad(labels, (n, 0), value=-100)
        return (), kwargs

    return hook


def _lengthen(kwargs: dict, n: int, first: bool = False) -> None:
    """Account for ``n`` prompt positions in front of the sequence (``first``: they are in this call's input)."""
    if kwargs.get("attention_mask") is not None:
        kwargs["attention_mask"] = F.pad(kwargs["attention_mask"], (n, 0), value=1)
    if first and kwargs.get("token_type_ids") is not None:
        kwargs["token_type_ids"] = F.pad(kwargs["token_type_ids"], (n, 0), value=0)
    positions = kwargs.get("position_ids")
    if positions is not None:
        shifted = positions + n
        if first:  # the prompt takes positions 0..n-1
            head = torch.arange(n, device=positions.device).expand(*positions.shape[:-1], n)
            shifted = torch.cat([head, shifted], dim=-1)
        kwargs["position_ids"] = shifted
    if kwargs.get("cache_position") is not None:
        position = kwargs["cache_position"]
        kwargs["cache_position"] = torch.arange(position[-1] + 1 + n, device=position.device) if first else position + n


def _cross_mask_hook(router: Router, n: int) -> Callable[..., tuple[tuple, dict] | None]:
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        mask, states = kwargs.get("encoder_attention_mask"), kwargs.get("encoder_hidden_states")
        if router.disabled or mask is None or states is None or mask.shape[-1] != states.shape[1] - n:
            return None  # no mask, or one that already covers the prompt
        kwargs["encoder_attention_mask"] = F.pad(mask, (n, 0), value=1)
        return args, kwargs

    return hook
