"""Scoring a model on a split (accuracy, or exact match and ROUGE-L for text-to-text) and predicting one batch.

``adalink train`` scores its test split here, ``adalink eval`` and ``predict`` (:mod:`.artifacts`) and the bench
call the same functions, so a score means the same thing wherever it is read.
"""

from __future__ import annotations

import torch

from ..data import TextClassificationData
from .calls import routed_call, routed_generate, to_device
from .formats import ClassificationFormat, TextToTextFormat
from .progress import progress_bar
from .stream import TaskExample

__all__ = ["evaluate", "predict_batch"]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    task_aware: bool,
    fmt: ClassificationFormat | TextToTextFormat,
    tokenizer,
    datasets: list[TextClassificationData],
    *,
    split: str,
    max_examples: int | None,
    max_length: int,
    batch_size: int = 64,
    rouge_l: dict[str, float] | None = None,
) -> dict[str, float]:
    """Accuracy (exact match for text-to-text) per task on ``split``.

    For text-to-text, ``rouge_l`` (if given) receives each task's mean ROUGE-L F1 of the generated answers against
    the label words (``rouge-score``, the survey's metric for generative tasks), which credits near misses.
    """
    was_training = model.training
    model.eval()
    scores = {}
    for task, data in enumerate(datasets):
        examples = list(getattr(data, split))[:max_examples]
        correct, generated = 0, []
        for start in progress_bar(range(0, len(examples), batch_size), desc=f"eval {data.name}", leave=False):
            chunk = [TaskExample(task, e) for e in examples[start : start + batch_size]]
            predicted = predict_batch(model, task_aware, fmt, tokenizer, chunk, max_length, generated)
            correct += sum(int(p == item.example.label) for p, item in zip(predicted, chunk, strict=True))
        scores[data.name] = correct / max(1, len(examples))
        if rouge_l is not None and isinstance(fmt, TextToTextFormat):
            references = [data.label_names[e.label] for e in examples]
            rouge_l[data.name] = _rouge_l(generated, references)
    model.train(was_training)
    return scores


def predict_batch(
    model, task_aware: bool, fmt, tokenizer, items: list[TaskExample], max_length: int, details: list | None = None
) -> list[int]:
    """Label index (within each example's task) per item; -1 when a generated answer matches no label.

    ``details`` (if given) receives each item's label probabilities (classification) or generated text.
    """
    device = next(model.parameters()).device
    if isinstance(fmt, ClassificationFormat):
        batch = to_device(fmt.collate(items, tokenizer, max_length), device)
        labels, probabilities = fmt.predict(routed_call(model, task_aware), batch)
        if details is not None:
            details.extend(probabilities)
        return labels
    batch = to_device(fmt.generation_batch(items, tokenizer, max_length), device)
    inputs = {k: v for k, v in batch.items() if k != "task_ids"}
    sequences = routed_generate(model, task_aware)(
        inputs,
        batch["task_ids"],
        max_new_tokens=fmt.max_new_tokens(tokenizer),
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    new_tokens = sequences if fmt.encoder_decoder else sequences[:, inputs["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    if details is not None:
        details.extend(texts)
    return [fmt.parse(item.task, text) for item, text in zip(items, texts, strict=True)]


def _rouge_l(generated: list[str], references: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = zip(generated, references, strict=True)
    values = [scorer.score(ref, gen.strip().split("\n")[0]).get("rougeL").fmeasure for gen, ref in pairs]
    return sum(values) / max(1, len(values))
