"""Prompt tuning and prefix tuning as peft prompt-learning adapters (one ``prompt_embeddings`` table each).

- Prompt tuning: the task's soft prompt ``P`` (n×d) as it enters the model (with ``residual=True``, the output of
  the residual MLP, evaluated once: peft has no such re-parametrisation, and the MLP is a training device). Encoder-
  decoder models get it on the encoder input only (``num_transformer_submodules=1``), as we do. Our dropout on the
  prompt (training only) has no peft counterpart.
- Prefix tuning: the task's prefix (n × L·2·H_kv·d_head), laid out as peft lays out its table (``token_dim`` and
  ``num_attention_heads`` count key/value heads). With the training-time MLP, the prefix it produces now.
  Encoder-decoder models: peft repeats the table as ``[self K, V, cross K, V]`` per decoder layer and drops the
  cross part, so decoder layer ``l`` reads its self-attention key and value from rows ``4l mod 2L`` and
  ``4l + 1 mod 2L`` of the table (:func:`seq2seq_prefix_rows`). With an even number of layers two layers read the
  same rows, so such a prefix is exported only where those layers' prefixes are equal; otherwise it is refused.
"""

from __future__ import annotations

import torch
from torch import nn

from ..methods.shared.prefix import prefix_geometry
from .adapter import AdaptedModel, ExportError, PeftAdapter

__all__ = ["prefix_to_peft", "prompt_to_peft", "seq2seq_prefix_rows"]

PROMPT_KEY = "prompt_embeddings"  # peft's saved name of a prompt-learning table


def prompt_to_peft(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``prompt_tuning`` as a peft PROMPT_TUNING adapter."""
    bank = model.adapter_modules["bank"]
    prompt = _evaluated(bank, task)  # (n, d)
    config = {
        "peft_type": "PROMPT_TUNING",
        "num_virtual_tokens": prompt.shape[0],
        "token_dim": prompt.shape[1],
        "num_transformer_submodules": 1,  # the encoder input only, also for encoder-decoder models
        "prompt_tuning_init": "RANDOM",  # num_layers and num_attention_heads (unused here) peft reads from the model
    }
    return PeftAdapter(config, {PROMPT_KEY: prompt})


def prefix_to_peft(model: AdaptedModel, task: int) -> PeftAdapter:
    """Task ``task`` of ``prefix_tuning`` as a peft PREFIX_TUNING adapter (no projection: the prefix itself)."""
    layers, kv_heads, head_dim = prefix_geometry(model.base_model)
    prefix = _evaluated(model.adapter_modules["bank"], task)  # (n, L·2·H·d)
    encoder_decoder = bool(getattr(model.base_model.config, "is_encoder_decoder", False))
    if encoder_decoder:
        prefix = _seq2seq_table(prefix, layers)
    config = {
        "peft_type": "PREFIX_TUNING",
        "num_virtual_tokens": prefix.shape[0],
        "num_layers": layers,
        "token_dim": kv_heads * head_dim,
        "num_attention_heads": kv_heads,
        "num_transformer_submodules": 2 if encoder_decoder else 1,
        "prefix_projection": False,
    }
    return PeftAdapter(config, {PROMPT_KEY: prefix})


def seq2seq_prefix_rows(layers: int) -> list[tuple[int, int]]:
    """(key row, value row) that decoder layer ``l`` reads from peft's encoder-decoder prefix table, viewed as
    (n, 2·layers, width): peft doubles the table to 4·layers rows and splits it into 4 rows per layer."""
    return [((4 * layer) % (2 * layers), (4 * layer + 1) % (2 * layers)) for layer in range(layers)]


def _seq2seq_table(prefix: torch.Tensor, layers: int) -> torch.Tensor:
    """Our (n, L·2·width) decoder prefix placed where peft's encoder-decoder layout reads it; refused if two layers
    with different prefixes would read the same rows."""
    n = prefix.shape[0]
    ours = prefix.view(n, layers, 2, -1)  # (n, L, K/V, width)
    table = torch.zeros(n, 2 * layers, ours.shape[-1], dtype=prefix.dtype)
    owner: dict[int, int] = {}
    for layer, rows in enumerate(seq2seq_prefix_rows(layers)):
        for kv, row in enumerate(rows):
            if row in owner and not torch.equal(table[:, row], ours[:, layer, kv]):
                raise ExportError(
                    f"Cannot export this encoder-decoder prefix to peft exactly: with {layers} decoder layers, peft's "
                    f"prefix layout makes layers {owner[row]} and {layer} read the same rows of its table (row {row}), "
                    "and this adapter gives them different prefixes. Serve it with adalink instead "
                    "(adalink serve, or adalink.PeftModel.from_pretrained)."
                )
            owner.setdefault(row, layer)
            table[:, row] = ours[:, layer, kv]
    return table.reshape(n, -1)


def _evaluated(bank: nn.Module, task: int) -> torch.Tensor:
    """The bank's output for one task with dropout off (its training-time re-parametrisation applied)."""
    was_training = bank.training
    bank.eval()
    try:
        with torch.no_grad():
            return bank(task, 1)[0].detach().clone()  # (n, width)
    finally:
        bank.train(was_training)
