"""What one bench run measures besides its score: inference throughput, forgetting, adapter size.

- Inference throughput: non-padding input tokens per second of forward passes over the same test batches, timed
  in alternating rounds (unmerged, merged, unmerged, ...) in one process; the median round counts.
- Forgetting (Hugging Face peft's ``method_comparison`` reports the base model's loss change on held-out generic
  text): for models with a language-model head, the per-token loss of the tuned model minus the base model's on
  generic text; for encoder classifiers, which have no LM head, the drift of the backbone's sentence embeddings
  (``1 - mean cosine`` between the base and tuned mean-pooled last hidden states on the same text). MiniLM is a
  sentence-embedding model, so this is the capability that fine-tuning may erode. The generic text is the
  Python reference manual shipped with the interpreter (``pydoc_data.topics``): prose unrelated to every task.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "files_size",
    "forgetting_probe",
    "generic_texts",
    "time_throughput",
]


def generic_texts(count: int) -> list[str]:
    """``count`` prose paragraphs of the Python reference manual (``pydoc_data.topics``), in a fixed order."""
    from pydoc_data.topics import topics

    texts: list[str] = []
    for name in sorted(topics):
        for paragraph in re.split(r"\n\s*\n", topics[name]):
            if paragraph.startswith((" ", "*", "=", "-")) or len(paragraph) < 150:
                continue  # code samples, headings and short fragments
            texts.append(" ".join(paragraph.split()))
            if len(texts) == count:
                return texts
    return texts


def files_size(directory: Path) -> int:
    """Bytes of the weights a run saved (``*.safetensors`` outside ``checkpoints/``)."""
    total = 0
    for path in Path(directory).rglob("*.safetensors"):
        if "checkpoints" not in path.relative_to(directory).parts:
            total += path.stat().st_size
    return total


@torch.inference_mode()
def time_throughput(
    contenders: dict[str, Callable[[dict[str, torch.Tensor]], Any]],
    batches: Sequence[dict[str, torch.Tensor]],
    rounds: int,
) -> dict[str, float]:
    """Median tokens/s per contender over ``rounds`` alternating rounds (one warm-up pass each first)."""
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for call in contenders.values():  # warm-up
        call(batches[0])
    for _ in range(rounds):
        for name, call in contenders.items():
            began = time.perf_counter()
            for batch in batches:
                call(batch)
            _sync()
            samples[name].append(tokens / (time.perf_counter() - began))
    return {name: statistics.median(values) for name, values in samples.items()}


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@torch.inference_mode()
def forgetting_probe(
    call: Callable[..., Any], batches: Sequence[dict[str, torch.Tensor]], *, language_model: bool
) -> torch.Tensor:
    """Per-token LM loss (scalar) or mean-pooled last hidden states (N, D) of ``call`` on generic-text batches.

    Methods that prepend virtual tokens (prompt tuning) lengthen the sequence: the last T positions are the text.
    """
    outputs = []
    for batch in batches:
        mask = batch["attention_mask"]  # (B, T)
        width = mask.shape[1]
        if language_model:
            logits = call(batch).logits[:, -width:].float()  # (B, T, V)
            labels = batch["input_ids"].masked_fill(mask == 0, -100)[:, 1:]  # (B, T-1)
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="sum"
            )
            outputs.append(torch.stack([loss, (labels != -100).sum().float()]))
        else:
            hidden = call(batch, output_hidden_states=True).hidden_states[-1][:, -width:].float()  # (B, T, D)
            weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            outputs.append((hidden * weights).sum(1) / weights.sum(1).clamp(min=1))  # (B, D)
    if language_model:
        total = torch.stack(outputs).sum(0)
        return total[0] / total[1].clamp(min=1)
    return torch.cat(outputs)
