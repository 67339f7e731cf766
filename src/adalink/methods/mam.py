"""MAM adapter: a scaled parallel adapter beside every FFN plus prefix tuning (He et al. 2022; survey §10.2).

He et al. ("Towards a unified view of parameter-efficient transfer learning", §4-5) found scaled parallel adapters
best on the FFN and prefix tuning best on attention, and "mix and match" them:

* FFN: ``ffn_out(x) + s · f(x · W_down + b) · W_up + b`` with ``x`` the FFN input (:mod:`adalink.methods.adapters`);
* attention: ``n`` trainable key/value positions prepended in every attention layer, trained through an MLP
  re-parametrisation (:mod:`adalink.methods.prefix_tuning`; the MLP is dropped at save time).

Defaults are AdapterHub's ``mam`` configuration, which the survey's comparison used (§11.1, Table 5) and which
follows He et al.: prefix length 30 with an 800-wide MLP, parallel adapter m = d/2 (512 on T5-Large), ReLU, s = 4.
The adapter's ``W_up`` starts at zero but the prefix acts from the first step, so MAM does not start exactly at the
base; it is not mergeable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from ..routing import Router
from .activations import ACTIVATIONS
from .base import Attachment, MethodConfig, register_method
from .shared.bottleneck import ParallelAdapterFields
from .shared.combine import combine
from .shared.prefix import attach_prefix

__all__ = ["MAMConfig"]


@register_method
@dataclass
class MAMConfig(MethodConfig):
    """Scaled parallel FFN adapter + prefix tuning (mix-and-match adapter)."""

    method: ClassVar[str] = "mam"
    display_name: ClassVar[str] = "MAM adapter"
    size_field: ClassVar[str | None] = "bottleneck"  # `--rank` sets the parallel adapter's width m
    peft_refusal: ClassVar[str | None] = "peft has no MAM adapter (prefix tuning + parallel adapters in one adapter)"
    mergeable: ClassVar[bool] = False  # a non-linear adapter and extra attention positions
    identity_at_init: ClassVar[bool] = False  # the prefix attends from the first step
    default_lr: ClassVar[float] = 1e-3  # survey §11.1 (its sweep: 1e-3, 1e-4, 5e-5)
    source: ClassVar[str] = "He et al. 2022 §4-5; survey §10.2, §11.1, Table 5 (AdapterHub mam)"

    num_virtual_tokens: int = 30  # prefix length l (He et al.; AdapterHub mam)
    prefix_projection: bool = True  # train the prefix through an MLP (Li & Liang §4.3); dropped at save time
    encoder_hidden_size: int = 800  # hidden width of that MLP (AdapterHub mam: bottleneck_size=800)
    reduction_factor: float = 2.0  # parallel adapter width m = d / 2 (He et al.: 512 on d = 1024)
    bottleneck: int | None = None  # m itself; overrides reduction_factor (`adalink train --rank`)
    scaling: float = 4.0  # s, the scale of the parallel branch (He et al.)
    activation: str = "relu"  # the adapter's non-linearity
    dropout: float = 0.0  # on the adapter's input during training
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one adapter and one prefix per task
    roles: dict[str, list[str]] = field(default_factory=dict)  # role -> module paths/regexes (ffn, ffn_out)

    def validate(self) -> None:
        self.check_positive_int("num_virtual_tokens")
        if not isinstance(self.prefix_projection, bool):
            raise self.bad("prefix_projection", self.prefix_projection, "True or False")
        self.check_positive_int("encoder_hidden_size")
        self.check_choice("activation", tuple(ACTIVATIONS))
        self._adapter_config()  # validates the adapter fields under their own names

    def _adapter_config(self) -> ParallelAdapterFields:
        try:
            return ParallelAdapterFields(
                reduction_factor=self.reduction_factor,
                bottleneck=self.bottleneck,
                scaling=self.scaling,
                activation=self.activation,
                dropout=self.dropout,
                tasks=list(self.tasks),
                roles=dict(self.roles),
            )
        except ValueError as err:
            raise type(err)(str(err).replace("ParallelAdapterFields.", "MAMConfig.")) from None

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        adapter = self._adapter_config().attach(model, router)
        prefix = attach_prefix(
            model,
            router,
            self.num_virtual_tokens,
            num_tasks=len(self.tasks),
            projection=self.prefix_projection,
            hidden=self.encoder_hidden_size,
        )
        return combine({"adapter": adapter, "prefix": prefix})
