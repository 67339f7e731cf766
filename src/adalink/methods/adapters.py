"""Bottleneck adapters: Houlsby, Pfeiffer and the scaled Parallel adapter (survey §5.1, §10.2; Table 5).

A bottleneck adapter maps a hidden state ``h`` (width d) through a bottleneck of width ``m``:

    ``Δ(h) = f(h · W_down + b_down) · W_up + b_up``        W_down (d×m), W_up (m×d)

* **Houlsby** (Houlsby et al. 2019): ``h ← h + Δ(h)`` on the output of the attention output projection (role ``o``)
  AND of the FFN output projection (role ``ffn_out``), i.e. on each sublayer's output before its residual add.
* **Pfeiffer** (Pfeiffer et al. 2020): the same, after the FFN only.
* **Parallel** (He et al. 2022, "scaled parallel adapter"): ``ffn_out ← ffn_out + s · Δ(x)`` where ``x`` is the FFN
  sublayer's *input* (role ``ffn``, captured by a forward pre-hook) paired with the same layer's ``ffn_out``.

``W_up`` and both biases start at zero, so the adapted model starts exactly at the base. Adapters attach through
removable forward (pre-)hooks; no model code is edited and :meth:`PeftModel.unload` restores the base exactly. They
change the computation (a non-linearity between two projections), so they cannot be merged into the base weights.

Defaults are those of the survey's comparison (§11.1, Table 5), which used AdapterHub's configurations: Houlsby
``m = d/16`` with swish, Pfeiffer ``m = d/16`` with ReLU, Parallel ``m = d/2``, ReLU, ``s = 4``; learning rate 1e-3.
Cross-attention output projections of encoder-decoder models get no adapter by default (AdapterHub's
``cross_adapter=False``; with it the survey's T5 counts, 2 or 1 adapters per layer, are reproduced exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import register_method
from .shared.bottleneck import BottleneckConfig, ParallelAdapterFields

__all__ = ["HoulsbyConfig", "ParallelAdapterConfig", "PfeifferConfig"]


@register_method
@dataclass
class HoulsbyConfig(BottleneckConfig):
    """Houlsby adapters: one after the attention output projection and one after the FFN, in every layer.

    Trainable parameters: 2 adapters × (2·d·m + d + m) per layer (survey Table 5: 12.69M on T5-Large).
    """

    method: ClassVar[str] = "houlsby"
    display_name: ClassVar[str] = "Houlsby adapter"
    peft_refusal: ClassVar[str | None] = "peft has no bottleneck adapters (Houlsby)"
    source: ClassVar[str] = "Houlsby et al. 2019; survey §5.1, §11.1 and Table 5 (AdapterHub double_seq_bn)"
    sites: ClassVar[tuple[str, ...]] = ("o", "ffn_out")


@register_method
@dataclass
class PfeifferConfig(BottleneckConfig):
    """Pfeiffer adapters: one adapter after the FFN of every layer: d·(2m) + d + m per layer (6.34M on T5-Large)."""

    method: ClassVar[str] = "pfeiffer"
    display_name: ClassVar[str] = "Pfeiffer adapter"
    peft_refusal: ClassVar[str | None] = "peft has no bottleneck adapters (Pfeiffer)"
    source: ClassVar[str] = "Pfeiffer et al. 2020; survey §5.1, §11.1 and Table 5 (AdapterHub seq_bn)"
    sites: ClassVar[tuple[str, ...]] = ("ffn_out",)

    activation: str = "relu"  # f (AdapterHub seq_bn)


@register_method
@dataclass
class ParallelAdapterConfig(ParallelAdapterFields):
    """Scaled parallel adapter beside the FFN: ``ffn_out(x) + s · Δ(x)`` with ``x`` the FFN input (He et al. 2022).

    Trainable parameters: 2·d·m + d + m per layer with m = d/2 (survey Table 5: 50.41M on T5-Large).
    """

    method: ClassVar[str] = "parallel"
    display_name: ClassVar[str] = "Parallel adapter"
    peft_refusal: ClassVar[str | None] = "peft has no parallel bottleneck adapters"
    source: ClassVar[str] = "He et al. 2022 §3-4; survey §10.2, §11.1 and Table 5 (AdapterHub par_bn)"
