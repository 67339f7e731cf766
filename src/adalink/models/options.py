"""The options of a run that choose its base model and how the frozen base is held in memory.

:class:`ModelOptions` is the model group of :class:`adalink.training.args.TrainArgs` (``adalink train --model ...
--dtype ...``); :attr:`ModelOptions.loading` is the :class:`~.precision.BaseLoading` that loading the base reads. A
field's ``help`` is its flag's help.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .precision import BaseLoading

__all__ = ["ModelOptions"]


@dataclass
class ModelOptions:
    """Which base model a run adapts, its dtype, quantization and activation checkpointing."""

    model: str = field(
        default="minilm",
        metadata={
            "help": "minilm, smollm2-135m, gemma3-270m, a local directory or a cached hub name; easyvqa: easyvqa-vlm"
        },
    )
    dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype of the frozen base weights: float32, bfloat16 or float16 (the method's own parameters and "
            "the optimiser state stay float32)"
        },
    )
    quantize: str = field(
        default="none",
        metadata={
            "help": "quantize the frozen base's linear layers: none, int8 (torchao weight-only; CPU or GPU), nf4 or "
            "int8-bnb (bitsandbytes; made for a GPU); see docs/scaling.md"
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute the blocks' activations in the backward pass (transformers' own, non-reentrant)"},
    )

    @property
    def loading(self) -> BaseLoading:
        """How the frozen base is loaded (raises :class:`~adalink.errors.UsageError` on an unknown dtype or
        quantization)."""
        return BaseLoading(self.dtype, self.quantize, self.gradient_checkpointing)
