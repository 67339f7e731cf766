"""Prefix tuning: trainable key/value vectors prepended in every attention layer (Li & Liang 2021; survey §6).

Each layer ``l`` attends over ``[P_K^l; K^l]`` and ``[P_V^l; V^l]`` with ``n`` trainable prefix positions. Training
through the prefix directly is unstable, so Li & Liang (§4.3) re-parametrise it with an MLP,
``P = MLP(P') = tanh(P'·W_1 + b_1)·W_2 + b_2`` from a smaller ``P'`` (n×d). The MLP is a training device only: the
adapter file holds the resulting prefix, and a reloaded adapter uses it directly with the same outputs.

The prefix enters through the ``transformers`` cache: a forward pre-hook on the model fills a fresh
``DynamicCache`` with it when the call brings no (or an empty) cache, and lengthens the 2-D attention mask by ``n``;
later ``generate()`` steps find it in the cache and only need the longer mask. Prefixes are stacked per task,
``(T, n, L·2·H_kv·d_head)``, and gathered per example. Encoder-decoder models (T5) get the prefix in the decoder's
self-attention (as Hugging Face peft does in effect); encoder-only models (BERT) in their self-attention.
The attachment itself, :func:`~adalink.methods.shared.prefix.attach_prefix`, is shared: MAM and UniPELT compose it
with adapters and LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from torch import nn

from ..routing import Router
from .base import Attachment, MethodConfig, register_method
from .shared.prefix import attach_prefix

__all__ = ["PrefixTuningConfig"]


@register_method
@dataclass
class PrefixTuningConfig(MethodConfig):
    """Prefix length and the training-time MLP re-parametrisation."""

    method: ClassVar[str] = "prefix_tuning"
    display_name: ClassVar[str] = "Prefix tuning"
    mergeable: ClassVar[bool] = False  # extra attention positions are not a weight change
    identity_at_init: ClassVar[bool] = False  # the prefix changes attention from the first step
    # AdamW through the MLP (the default): each prefix entry sums 512 MLP weights that Adam moves together, so the
    # prompt-tuning-like 1e-2 (and 3e-3) give every example the same features by step 20, for good (MiniLM on tweets:
    # the majority class). 1e-3 lost one seed of three that way, 3e-4 none (BENCHMARKS.md, standard profile's note);
    # the survey sweeps 1e-3, 1e-4, 5e-5 (Appendix B). Without the MLP (prefix_projection=False) each entry is its
    # own parameter: use a prompt-tuning rate (~1e-2).
    default_lr: ClassVar[float] = 3e-4
    source: ClassVar[str] = "Li & Liang 2021, §4.2-4.3; Lialin et al. 2023 (survey), §6"

    num_virtual_tokens: int = (
        20  # n, prefix positions per layer (Li & Liang §7.2: 10 for table-to-text, 200 for summaries)
    )
    prefix_projection: bool = True  # train through the MLP P = MLP(P') (§4.3); dropped at save time
    encoder_hidden_size: int = 512  # hidden width of that MLP (Li & Liang's §4.3 re-parametrisation; peft's name)
    tasks: list[str] = field(default_factory=lambda: ["default"])  # one prefix per task, routed per example

    def validate(self) -> None:
        self.check_positive_int("num_virtual_tokens")
        if not isinstance(self.prefix_projection, bool):
            raise self.bad("prefix_projection", self.prefix_projection, "True or False")
        self.check_positive_int("encoder_hidden_size")

    def attach(self, model: nn.Module, router: Router) -> Attachment:
        return attach_prefix(
            model,
            router,
            self.num_virtual_tokens,
            num_tasks=len(self.tasks),
            projection=self.prefix_projection,
            hidden=self.encoder_hidden_size,
        )
