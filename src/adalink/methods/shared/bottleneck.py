"""Bottleneck adapters' shared pieces: the stacked bank, the config fields, where adapters go, the two hooks.

``Δ(h) = f(h · W_down + b_down) · W_up + b_up`` (W_down d×m, W_up m×d), one per task, stacked
(:class:`BottleneckBank`); added after a module's output (sequential: Houlsby, Pfeiffer, Compacter's layout) or beside
the FFN from its input (parallel: the scaled parallel adapter, MAM). The methods and their defaults are documented in
:mod:`adalink.methods.adapters`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from ...errors import UsageError
from ...routing import Router, TaskIds
from ..activations import ACTIVATIONS
from ..base import Attachment, Handle, MethodConfig
from ..roles import find_role, layer_of

__all__ = [
    "BottleneckBank",
    "BottleneckConfig",
    "InputSlot",
    "ParallelAdapterFields",
    "adapter_sites",
    "bottleneck_width",
    "hidden_size",
    "module_key",
    "parallel_pairs",
    "rows_of",
]

# Containers of cross-attention in the supported architectures (T5 decoder, BERT/GPT-2 with add_cross_attention).
_CROSS_ATTENTION = ("EncDecAttention", "crossattention")


# ------------------------------------------------------------------------------------------------------ the module
class BottleneckBank(nn.Module):
    """``num_tasks`` bottleneck adapters of one site, stacked so a mixed-task batch gathers its weights per example.

    :meth:`delta` returns ``Δ(h) = f(dropout(h) · W_down + b_down) · W_up + b_up`` only; callers add it where their
    method puts it (sequentially on a sublayer output, scaled in parallel, or gated).
    """

    def __init__(self, num_tasks: int, dim: int, bottleneck: int, *, activation: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.dim, self.bottleneck, self.activation = dim, bottleneck, activation
        self.down = nn.Parameter(torch.empty(num_tasks, dim, bottleneck))  # W_down per task, (T, d, m)
        self.down_bias = nn.Parameter(torch.zeros(num_tasks, bottleneck))  # (T, m)
        self.up = nn.Parameter(torch.zeros(num_tasks, bottleneck, dim))  # W_up per task, (T, m, d): zero => identity
        self.up_bias = nn.Parameter(torch.zeros(num_tasks, dim))  # (T, d)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        with torch.no_grad():
            for down in self.down:  # init runs once; nn.Linear(d, m)'s default (fan_in = d), as LoRA's A
                nn.init.kaiming_uniform_(down.T, a=math.sqrt(5))

    def delta(self, h: torch.Tensor, task_ids: TaskIds) -> torch.Tensor:
        """``Δ(h)`` for ``h`` of shape (B, ..., d); ``task_ids`` an int for the batch or a (B,) LongTensor."""
        x = self.dropout(h).to(self.down.dtype)
        act = ACTIVATIONS[self.activation]
        if isinstance(task_ids, int):
            z = act(x @ self.down[task_ids] + self.down_bias[task_ids])  # (B, ..., m)
            return (z @ self.up[task_ids] + self.up_bias[task_ids]).to(h.dtype)  # (B, ..., d)
        flat = x.reshape(h.shape[0], -1, self.dim)  # (B, N, d)
        z = act(torch.baddbmm(self.down_bias[task_ids].unsqueeze(1), flat, self.down[task_ids]))  # (B, N, m)
        out = torch.baddbmm(self.up_bias[task_ids].unsqueeze(1), z, self.up[task_ids])  # (B, N, d)
        return out.reshape(h.shape).to(h.dtype)

    def extra_repr(self) -> str:
        return f"num_tasks={self.down.shape[0]}, dim={self.dim}, bottleneck={self.bottleneck}, f={self.activation}"


# ----------------------------------------------------------------------------------------------------- the configs
@dataclass
class BottleneckConfig(MethodConfig):
    """Fields shared by the bottleneck-adapter family; subclasses fix where adapters go (``sites``)."""

    mergeable: ClassVar[bool] = False  # a non-linearity sits between W_down and W_up
    size_field: ClassVar[str | None] = "bottleneck"  # `--rank` sets the bottleneck width m
    default_lr: ClassVar[float] = 1e-3  # survey §11.1: 1e-3 "performs consistently well across PEFT methods"
    sites: ClassVar[tuple[str, ...]] = ()  # roles whose OUTPUT gets a sequential adapter

    reduction_factor: float = 16.0  # m = d / reduction_factor (AdapterHub's knob; survey Table 5 used its defaults)
    bottleneck: int | None = None  # m itself; overrides reduction_factor (`adalink train --rank`)
    activation: str = "silu"  # f in Δ(h); one of ACTIVATIONS
    dropout: float = 0.0  # on the adapter's input during training (AdapterHub default 0)
    cross_attention: bool = False  # also adapt cross-attention outputs of encoder-decoders (AdapterHub: False)
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one adapter per task, routed per example
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module paths/regexes (unknown architectures)

    def validate(self) -> None:
        value = self.reduction_factor
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.bad("reduction_factor", value, "a positive number (m = d / reduction_factor)")
        if self.bottleneck is not None:
            self.check_positive_int("bottleneck")
        self.check_choice("activation", tuple(ACTIVATIONS))
        self.check_probability("dropout")
        if not isinstance(self.cross_attention, bool):
            raise self.bad("cross_attention", self.cross_attention, "True or False")
        for role, patterns in self.roles.items():
            if not isinstance(patterns, list) or not all(isinstance(p, str) and p for p in patterns):
                raise self.bad("roles", self.roles, f"role -> list of module paths/regexes (bad entry {role!r})")

    def width(self, dim: int) -> int:
        return bottleneck_width(dim, self.reduction_factor, self.bottleneck)

    def find_sites(self, model: nn.Module, role: str) -> dict[str, nn.Module]:
        return adapter_sites(model, role, self.roles, cross_attention=self.cross_attention, method=self.method)

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        banks = nn.ModuleDict()
        handles: list[Handle] = []
        touched: dict[str, nn.Module] = {}
        for role in self.sites:
            for path, module in self.find_sites(model, role).items():
                bank = BottleneckBank(
                    len(self.tasks), hidden_size(module, path, "out"), self.width(hidden_size(module, path, "out")),
                    activation=self.activation, dropout=self.dropout,
                )  # fmt: skip
                banks[module_key(path)] = bank
                handles.append(module.register_forward_hook(_sequential_hook(bank, router, path)))
                touched[path] = module
        return Attachment(banks, handles, touched)


@dataclass
class ParallelAdapterFields(BottleneckConfig):
    """The scaled parallel adapter beside the FFN, ``ffn_out(x) + s · Δ(x)`` with ``x`` the FFN input (He et al.
    2022): its fields and attachment, registered as ``parallel``
    (:class:`adalink.methods.adapters.ParallelAdapterConfig`) and used inside MAM."""

    reduction_factor: float = 2.0  # m = d / 2 (AdapterHub par_bn, survey Table 5)
    activation: str = "relu"  # f (AdapterHub par_bn)
    scaling: float = 4.0  # s, the fixed scale of the parallel branch (He et al. 2022: s = 4)

    def validate(self) -> None:
        super().validate()
        if isinstance(self.scaling, bool) or not isinstance(self.scaling, (int, float)) or self.scaling <= 0:
            raise self.bad("scaling", self.scaling, "a positive number (the scale s of the parallel branch)")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        banks = nn.ModuleDict()
        handles: list[Handle] = []
        touched: dict[str, nn.Module] = {}
        for ffn_path, ffn, out_path, out in parallel_pairs(model, self):
            dim = hidden_size(out, out_path, "out")
            bank = BottleneckBank(
                len(self.tasks), dim, self.width(dim), activation=self.activation, dropout=self.dropout
            )
            banks[module_key(out_path)] = bank
            slot = InputSlot()
            handles.append(ffn.register_forward_pre_hook(slot.capture_hook(router), with_kwargs=True))
            add = _parallel_hook(bank, router, slot, self.scaling, out_path)
            handles.append(out.register_forward_hook(add))
            touched.update({ffn_path: ffn, out_path: out})
        return Attachment(banks, handles, touched)


# ---------------------------------------------------------------------------------------------- shared pieces
def bottleneck_width(dim: int, reduction_factor: float, bottleneck: int | None, multiple_of: int = 1) -> int:
    """m = ``bottleneck`` or d / reduction_factor, at least 1 and rounded up to a multiple of ``multiple_of``."""
    width = bottleneck if bottleneck is not None else max(1, int(dim // reduction_factor))
    return max(multiple_of, math.ceil(width / multiple_of) * multiple_of)


def module_key(path: str) -> str:
    """A ModuleDict key for a dotted module path (state-dict names then read like the path)."""
    return path.replace(".", "-")


def rows_of(tensor: torch.Tensor) -> int:
    return tensor.shape[0] if tensor.dim() > 1 else 1


def hidden_size(module: nn.Module, path: str, side: str) -> int:
    """Input (``side="in"``) or output width of a linear-like module (nn.Linear, GPT-2's Conv1D)."""
    weight = getattr(module, "weight", None)
    if isinstance(weight, torch.Tensor) and weight.dim() == 2:
        if type(module).__name__ == "Conv1D":  # GPT-2 stores (in, out)
            return weight.shape[0] if side == "in" else weight.shape[1]
        return weight.shape[1] if side == "in" else weight.shape[0]
    for attr in ("in_features",) if side == "in" else ("out_features",):
        if isinstance(getattr(module, attr, None), int):
            return getattr(module, attr)
    raise TypeError(f"Cannot tell the {side}put width of {path!r} ({type(module).__name__}): expected a linear layer.")


def adapter_sites(
    model: nn.Module, role: str, roles: dict[str, list[str]], *, cross_attention: bool = False, method: str = ""
) -> dict[str, nn.Module]:
    """Modules playing ``role`` (``roles`` overrides the role map), without cross-attention unless asked."""
    found = find_role(model, role, roles, method=method or "this method")
    if cross_attention or role in roles:
        return found
    return {p: m for p, m in found.items() if not set(p.split(".")) & set(_CROSS_ATTENTION)}


def parallel_pairs(model: nn.Module, config: MethodConfig) -> list[tuple[str, nn.Module, str, nn.Module]]:
    """(ffn path, ffn module, ffn_out path, ffn_out module) per layer, paired with :func:`roles.layer_of`."""
    overrides = getattr(config, "roles", None)
    name = type(config).__name__
    inputs = find_role(model, "ffn", overrides, method=name)
    outputs = find_role(model, "ffn_out", overrides, method=name)
    by_layer = {layer_of(path): (path, module) for path, module in inputs.items()}
    pairs = []
    for out_path, out in outputs.items():
        if layer_of(out_path) not in by_layer:
            raise UsageError(f"{name}: no 'ffn' module in the layer of {out_path!r} to take the adapter input from.")
        pairs.append((*by_layer[layer_of(out_path)], out_path, out))
    return pairs


class InputSlot:
    """Carries a module's input to a later hook of the same forward pass (per thread / task, via a ContextVar)."""

    def __init__(self) -> None:
        self._value: ContextVar[torch.Tensor | None] = ContextVar(f"adalink_slot_{id(self)}", default=None)

    def capture_hook(self, router: Router) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if not router.disabled:
                value = args[0] if args else next(v for v in kwargs.values() if isinstance(v, torch.Tensor))
                self._value.set(value)

        return hook

    def take(self, where: str) -> torch.Tensor:
        value = self._value.get()
        if value is None:
            raise RuntimeError(f"{where}: the FFN input was not captured before its output projection ran.")
        self._value.set(None)  # do not keep the activation alive after use
        return value


def _sequential_hook(bank: BottleneckBank, router: Router, path: str) -> Callable[..., torch.Tensor | None]:
    where = f"the adapter after {path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        return output + bank.delta(output, router.ids_for(rows_of(output), where))  # (B, T, d)

    return hook


def _parallel_hook(
    bank: BottleneckBank, router: Router, slot: InputSlot, scaling: float, path: str
) -> Callable[..., torch.Tensor | None]:
    where = f"the parallel adapter of {path!r}"

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if router.disabled:
            return None
        x = slot.take(where)  # (B, T, d): the FFN sublayer's input
        return output + scaling * bank.delta(x, router.ids_for(rows_of(x), where))  # (B, T, d)

    return hook
