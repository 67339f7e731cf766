"""UniPELT: gated LoRA + gated prefix tuning + a gated adapter in one model (Mao et al. 2022; survey §10.3).

Each submodule ``M`` is scaled by its own gate, computed from that submodule's input ``x`` and averaged over the
sequence (Mao et al. §3; survey §10.3):

    ``G = mean_t σ(x_t · w + b)``  (one scalar per example)

* LoRA on the attention query and value projections: ``W x + G_L · (α/r) · B A x``;
* a Pfeiffer-style adapter after the FFN: ``h + G_A · Δ(h)`` with ``h`` the FFN output;
* prefix tuning on every attention layer's keys and values (:mod:`adalink.methods.prefix_tuning`), the prefix keys
  and values of each layer scaled by ``G_P`` computed from that layer's input.

The prefix enters through the cache (one fresh cache per call); a forward pre-hook on each attention layer that
receives it scales that layer's cached prefix by ``G_P`` once, before the layer appends its own keys and values. In
``generate()`` the gate is therefore computed from the prompt (the first step) and kept for later steps.

Defaults are AdapterHub's ``unipelt`` configuration, which the survey's comparison used (§11.1, Table 5): LoRA
r = 8, α = 2 on q and v; prefix length 10 with the 512-wide reparametrisation MLP; adapter m = d/16 with ReLU.
LoRA's ``B`` and the adapter's ``W_up`` start at zero, but the prefix acts from the first step, so UniPELT does not
start exactly at the base. It is not mergeable (the gates depend on the input).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ..routing import Router, TaskIds
from ._cache import find_cache
from .activations import ACTIVATIONS
from .base import Attachment, Handle, MethodConfig, register_method
from .shared.bottleneck import BottleneckBank, adapter_sites, bottleneck_width, hidden_size, module_key, rows_of
from .shared.combine import combine
from .shared.linear import add_output_hook, find_linear_sites
from .shared.lora_bank import LoRABank
from .shared.prefix import attach_prefix

__all__ = ["TaskGate", "UniPELTConfig", "gated_adapters", "gated_lora", "gated_prefix"]

_GATED = "_adalink_unipelt_gated"  # marks a cache layer whose prefix has been gated
_Parts = tuple[nn.ModuleDict, list[Handle], dict[str, nn.Module]]  # (modules, handles, touched) of one gated part


class TaskGate(nn.Module):
    """``G = mean over positions of σ(x · w + b)``, one gate per example and task (UniPELT's gating function).

    Returns (B, 1, ..., 1, outputs) so it broadcasts over a (B, T, d) output; ``outputs`` > 1 gives several gates.
    """

    def __init__(self, num_tasks: int, dim: int, outputs: int = 1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_tasks, dim, outputs))  # (T, d, k), an nn.Linear(d, k) per task
        self.bias = nn.Parameter(torch.empty(num_tasks, outputs))  # (T, k)
        bound = 1 / math.sqrt(dim)
        with torch.no_grad():
            for w in self.weight:  # nn.Linear's default init, once
                nn.init.kaiming_uniform_(w.T, a=math.sqrt(5))
            self.bias.uniform_(-bound, bound)

    def forward(self, x: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        x = x.to(self.weight.dtype)
        if isinstance(task_ids, int):
            logits = x @ self.weight[task_ids] + self.bias[task_ids]  # (B, ..., k)
        else:
            flat = x.reshape(x.shape[0], -1, x.shape[-1])  # (B, N, d)
            logits = torch.baddbmm(self.bias[task_ids].unsqueeze(1), flat, self.weight[task_ids])  # (B, N, k)
            logits = logits.reshape(*x.shape[:-1], -1)
        dims = tuple(range(1, x.dim() - 1))
        return torch.sigmoid(logits).mean(dim=dims, keepdim=True)  # (B, 1, ..., k)


class _Gated(nn.Module):
    """A submodule with its gate (saved together, selected together)."""

    def __init__(self, inner: nn.Module, gate: TaskGate) -> None:
        super().__init__()
        self.inner, self.gate = inner, gate


def gated_lora(model: nn.Module, router: Router, config: UniPELTConfig) -> _Parts:
    """LoRA on ``config.lora_targets`` with ``W x + G_L(x) · LoRA(x)``; returns (modules, handles, touched)."""
    modules = nn.ModuleDict()
    handles: list[Handle] = []
    touched: dict[str, nn.Module] = {}
    tasks = len(config.tasks)
    for site in find_linear_sites(model, config.lora_targets, config.roles, method=config.method):
        bank = LoRABank(
            tasks, site.in_features, site.out_features, config.lora_rank, config.lora_alpha / config.lora_rank
        )
        gated = modules[site.key] = _Gated(bank, TaskGate(tasks, site.in_features))

        def delta(x: torch.Tensor, ids: TaskIds, gated: _Gated = gated) -> torch.Tensor:
            return gated.gate(x, ids) * gated.inner(x, ids)  # (B, 1, 1) * (B, T, out)

        handles.append(add_output_hook(site, delta, router, config.method))
        touched[site.path] = site.module
    return modules, handles, touched


def gated_adapters(model: nn.Module, router: Router, config: UniPELTConfig) -> _Parts:
    """A bottleneck adapter after every FFN: ``h + G_A(h) · Δ(h)``; returns (modules, handles, touched)."""
    modules = nn.ModuleDict()
    handles: list[Handle] = []
    touched: dict[str, nn.Module] = {}
    tasks = len(config.tasks)
    for path, module in adapter_sites(model, "ffn_out", config.roles, method=config.method).items():
        dim = hidden_size(module, path, "out")
        width = bottleneck_width(dim, config.reduction_factor, config.bottleneck)
        bank = BottleneckBank(tasks, dim, width, activation=config.activation, dropout=config.dropout)
        gated = modules[module_key(path)] = _Gated(bank, TaskGate(tasks, dim))
        handles.append(module.register_forward_hook(_gated_adapter_hook(gated, router, path)))
        touched[path] = module
    return modules, handles, touched


def _gated_adapter_hook(gated: _Gated, router: Router, path: str) -> Callable[..., torch.Tensor | None]:
    where = f"the UniPELT adapter after {path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        ids = router.ids_for(rows_of(output), where)
        return output + gated.gate(output, ids) * gated.inner.delta(output, ids)  # (B, T, d)

    return hook


def gated_prefix(model: nn.Module, router: Router, config: UniPELTConfig) -> Attachment:
    """Prefix tuning whose per-layer prefix keys/values are scaled by ``G_P`` of that layer's input."""
    prefix = attach_prefix(
        model,
        router,
        config.num_virtual_tokens,
        num_tasks=len(config.tasks),
        projection=config.prefix_projection,
        hidden=config.encoder_hidden_size,
    )
    dim = model.get_input_embeddings().embedding_dim
    gates, handles, touched = nn.ModuleDict(), list(prefix.handles), {}
    for path, module in _prefixed_attention(model, config).items():
        gate = gates[module_key(path)] = TaskGate(len(config.tasks), dim)
        handles.append(
            module.register_forward_pre_hook(_prefix_gate_hook(gate, router, config, path), with_kwargs=True)
        )
        touched[path] = module

    modules = nn.ModuleDict({"prefix": prefix.modules, "gates": gates})
    return Attachment(modules, handles, touched, loaded=prefix.loaded)


def _prefixed_attention(model: nn.Module, config: UniPELTConfig) -> dict[str, nn.Module]:
    """Self-attention layers that receive the prefix: all of them, or the decoder's in an encoder-decoder model."""
    found = adapter_sites(model, "attention", config.roles, method=config.method)  # without cross-attention
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        decoder = {id(m) for m in model.get_decoder().modules()}
        found = {path: m for path, m in found.items() if id(m) in decoder}
    return found


def _prefix_gate_hook(gate: TaskGate, router: Router, config: UniPELTConfig, path: str) -> Callable[..., None]:
    where = f"the UniPELT prefix gate of {path!r}"

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        cache = find_cache(kwargs)
        if router.disabled or cache is None or kwargs.get("key_value_states") is not None:
            return
        cache = getattr(cache, "self_attention_cache", cache)  # EncoderDecoderCache: the decoder's own
        layer = cache.layers[module.layer_idx]
        if getattr(layer, _GATED, False) or layer.keys is None or layer.keys.shape[-2] != config.num_virtual_tokens:
            return  # gated already (a later generate() step) or not a fresh prefix
        hidden = args[0] if args else kwargs["hidden_states"]  # (B, T, d): the layer's input
        g = gate(hidden, router.ids_for(rows_of(hidden), where)).unsqueeze(-1)  # (B, 1, 1, 1)
        layer.keys, layer.values = layer.keys * g.to(layer.keys.dtype), layer.values * g.to(layer.values.dtype)
        setattr(layer, _GATED, True)

    return hook


@register_method
@dataclass
class UniPELTConfig(MethodConfig):
    """Gated LoRA (q, v) + gated prefix tuning + gated adapter after the FFN."""

    method: ClassVar[str] = "unipelt"
    display_name: ClassVar[str] = "UniPELT"
    size_field: ClassVar[str | None] = "bottleneck"  # `--rank` sets the adapter width m
    peft_refusal: ClassVar[str | None] = "peft has no UniPELT (gated LoRA + prefix + adapters in one adapter)"
    mergeable: ClassVar[bool] = False  # input-dependent gates
    identity_at_init: ClassVar[bool] = False  # the prefix attends from the first step
    default_lr: ClassVar[float] = 1e-3  # survey §11.1 (its sweep: 1e-3, 1e-4, 5e-5)
    source: ClassVar[str] = "Mao et al. 2022 (UniPELT) §3; survey §10.3, §11.1, Table 5 (AdapterHub unipelt)"

    num_virtual_tokens: int = 10  # prefix length (AdapterHub unipelt)
    prefix_projection: bool = True  # train the prefix through an MLP (Li & Liang §4.3); dropped at save time
    encoder_hidden_size: int = 512  # hidden width of that MLP (AdapterHub prefix_tuning default)
    lora_rank: int = 8  # r of the gated LoRA (AdapterHub unipelt)
    lora_alpha: float = 2.0  # α; LoRA is scaled by α / r (AdapterHub unipelt: 2)
    lora_targets: list[str] = field(default_factory=lambda: ["q", "v"])  # roles that get the gated LoRA
    reduction_factor: float = 16.0  # adapter width m = d / 16 (AdapterHub seq_bn)
    bottleneck: int | None = None  # adapter width m itself; overrides reduction_factor (`adalink train --rank`)
    activation: str = "relu"  # the adapter's non-linearity (AdapterHub seq_bn)
    dropout: float = 0.0  # on the adapter's input during training
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one set of weights per task
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module paths/regexes (unknown architectures)

    def validate(self) -> None:
        self.check_positive_int("num_virtual_tokens")
        if not isinstance(self.prefix_projection, bool):
            raise self.bad("prefix_projection", self.prefix_projection, "True or False")
        self.check_positive_int("encoder_hidden_size")
        self.check_positive_int("lora_rank")
        if isinstance(self.lora_alpha, bool) or not isinstance(self.lora_alpha, (int, float)) or self.lora_alpha <= 0:
            raise self.bad("lora_alpha", self.lora_alpha, "a positive number")
        if not self.lora_targets or any(t not in ("q", "k", "v", "o") for t in self.lora_targets):
            raise self.bad("lora_targets", self.lora_targets, "a non-empty list of attention roles q, k, v, o")
        rf = self.reduction_factor
        if isinstance(rf, bool) or not isinstance(rf, (int, float)) or rf <= 0:
            raise self.bad("reduction_factor", rf, "a positive number (m = d / reduction_factor)")
        if self.bottleneck is not None:
            self.check_positive_int("bottleneck")
        self.check_choice("activation", tuple(ACTIVATIONS))
        self.check_probability("dropout")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        built = {"lora": gated_lora(model, router, self), "adapter": gated_adapters(model, router, self)}
        parts = {name: Attachment(*part) for name, part in built.items()}
        return combine({**parts, "prefix": gated_prefix(model, router, self)})
