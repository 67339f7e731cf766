"""Shared pieces of the peft and TRL integration tests (`from integrations._peft_helpers import ...`)."""

from __future__ import annotations

import torch
from torch import nn

from tiny_models import model_inputs, text_batch

TASK_TYPES = {"bert": "SEQ_CLS", "gpt2": "CAUSAL_LM", "llama": "CAUSAL_LM", "t5": "SEQ_2_SEQ_LM"}


def peft_banks(model: nn.Module, adapter: str = "default") -> list[nn.Module]:
    """The AdaLink banks of one adapter of a ``peft.PeftModel`` (one per modality)."""
    return [layer.adalink_bank[adapter] for layer in model.base_model.adalink.values() if adapter in layer.adalink_bank]


def perturb_peft(model: nn.Module, adapter: str = "default", seed: int = 7, scale: float = 0.5) -> None:
    """Non-zero W_up for one adapter, as training would give."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bank in peft_banks(model, adapter):
            bank.up.copy_(torch.randn(bank.up.shape, generator=generator) * scale)


def logits(model: nn.Module, name: str, batch: dict | None = None, **kwargs) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**model_inputs(name, batch or text_batch()), **kwargs).logits
