"""Scoring a model on a split (accuracy; exact match and ROUGE-L for text-to-text and sft) and predicting one batch.

``adalink train`` scores its test split here, ``adalink eval`` and ``predict`` (:mod:`.artifacts`) and the bench
call the same functions, so a score means the same thing wherever it is read.

- classification: accuracy per task.
- text-to-text: exact match of the generated label word (:meth:`TextToTextFormat.parse`); ROUGE-L on request.
- sft (:mod:`.sft`): ROUGE-L F1 of the greedy generation against the reference response (``rouge-score``, the
  survey's metric for generative tasks, which credits near misses); exact match on request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..data import DEFAULT_MAX_NEW_TOKENS, GenerationData, TextClassificationData, VQAData
from ..progress import progress_bar
from .calls import model_call, model_generate, to_device
from .examples import TaskExample
from .formats import ClassificationFormat, TextToTextFormat
from .sft import SFTFormat, eos_id

__all__ = ["evaluate", "exact_match", "example_records", "generate_texts", "predict_batch", "rouge_l", "rouge_l_scores"]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    fmt: ClassificationFormat | TextToTextFormat | SFTFormat,
    tokenizer: Any,
    datasets: Sequence[TextClassificationData | VQAData | GenerationData],
    *,
    split: str,
    max_examples: int | None,
    max_length: int,
    batch_size: int = 64,
    rouge_l: dict[str, float] | None = None,
    exact_match: dict[str, float] | None = None,
    examples_out: list[dict[str, Any]] | None = None,
) -> dict[str, float]:
    """The score per task on ``split``: accuracy (exact match for text-to-text, ROUGE-L F1 for sft).

    ``rouge_l`` / ``exact_match`` (if given) receive each generative task's mean ROUGE-L F1 / exact match of the
    generated answers against the references (for text-to-text, the label words). ``examples_out`` (if given)
    receives one record per scored example, in order (:func:`example_records`): a task's score is the mean of its
    records' ``score``.
    """
    was_training = model.training
    model.eval()
    scores = {}
    for task, data in enumerate(datasets):
        examples = list(getattr(data, split))[:max_examples]
        predicted: list[int] = []  # label indices (not for sft)
        generated: list = []  # generated texts (generative formats), or classification probabilities
        for start in progress_bar(range(0, len(examples), batch_size), desc=f"eval {data.name}", leave=False):
            chunk = [TaskExample(task, e) for e in examples[start : start + batch_size]]
            if isinstance(fmt, SFTFormat):
                limit = getattr(data, "max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
                generated += generate_texts(model, fmt, tokenizer, chunk, max_length, limit)
            else:
                predicted += predict_batch(model, fmt, tokenizer, chunk, max_length, generated)
        if examples_out is not None:
            examples_out += example_records(data, examples, predicted, generated, sft=isinstance(fmt, SFTFormat))
        if isinstance(fmt, SFTFormat):
            references = [e.response for e in examples]
            scores[data.name] = _record(data.name, generated, references, rouge_l, exact_match, whole=True)
            continue
        hits = sum(int(p == e.label) for p, e in zip(predicted, examples, strict=True))
        scores[data.name] = hits / max(1, len(examples))
        if isinstance(fmt, TextToTextFormat) and (rouge_l is not None or exact_match is not None):
            _record(data.name, generated, [data.label_names[e.label] for e in examples], rouge_l, exact_match)
    model.train(was_training)
    return scores


def example_records(
    data: TextClassificationData | VQAData | GenerationData,
    examples: Sequence[Any],
    predicted: Sequence[int],
    generated: Sequence[Any],
    *,
    sft: bool,
) -> list[dict[str, Any]]:
    """One record per scored example of one task: ``task``, ``index`` (in the split), ``score`` (1.0 / 0.0 for a
    label, ROUGE-L F1 for sft), ``reference`` and ``prediction`` (label names, None for an answer that names no label;
    sft: the response and the generation), and ``generated`` (text-to-text's generated text)."""
    if sft:
        references = [e.response for e in examples]
        scores = rouge_l_scores(list(generated), references)
        return [
            {"task": data.name, "index": i, "score": s, "reference": ref, "prediction": _answer(gen, False)}
            for i, (s, ref, gen) in enumerate(zip(scores, references, generated, strict=True))
        ]
    names = list(getattr(data, "label_names", None) or [])

    def name(label: int) -> str | int | None:
        return None if label < 0 else (names[label] if label < len(names) else label)

    records = []
    for i, (label, example) in enumerate(zip(predicted, examples, strict=True)):
        record = {"task": data.name, "index": i, "score": float(label == example.label)}
        record |= {"reference": name(example.label), "prediction": name(label)}
        if generated and isinstance(generated[i], str):  # text-to-text: the generation the label was read from
            record["generated"] = generated[i]
        records.append(record)
    return records


def _record(
    name: str,
    generated: list[str],
    references: list[str],
    rouge: dict[str, float] | None,
    exact: dict[str, float] | None,
    *,
    whole: bool = False,
) -> float:
    """Store the task's ROUGE-L / exact match where asked; returns ROUGE-L (of whole generations, or of their first
    line, as a label word is read)."""
    score = rouge_l(generated, references, first_line=not whole)
    if rouge is not None:
        rouge[name] = score
    if exact is not None:
        exact[name] = exact_match(generated, references, first_line=not whole)
    return score


def predict_batch(
    model: torch.nn.Module,
    fmt: ClassificationFormat | TextToTextFormat,
    tokenizer: Any,
    items: list[TaskExample],
    max_length: int,
    details: list[Any] | None = None,
) -> list[int]:
    """Label index (within each example's task) per item; -1 when a generated answer matches no label.

    ``details`` (if given) receives each item's label probabilities (classification) or generated text. For sft,
    which has no labels, see :func:`generate_texts`.
    """
    if isinstance(fmt, ClassificationFormat):
        batch = to_device(fmt.collate(items, tokenizer, max_length), next(model.parameters()).device)
        labels, probabilities = fmt.predict(model_call(model), batch)
        if details is not None:
            details.extend(probabilities)
        return labels
    texts = generate_texts(model, fmt, tokenizer, items, max_length, fmt.max_new_tokens(tokenizer))
    if details is not None:
        details.extend(texts)
    return [fmt.parse(item.task, text) for item, text in zip(items, texts, strict=True)]


def generate_texts(
    model: torch.nn.Module,
    fmt: TextToTextFormat | SFTFormat,
    tokenizer: Any,
    items: Sequence[TaskExample],
    max_length: int,
    max_new_tokens: int,
) -> list[str]:
    """The greedy generation for each item (its prompt cut to ``max_length`` tokens), routed to its task.

    sft generation stops at the token its responses end with (:func:`adalink.tasks.sft.eos_id`); text-to-text at
    the model's own end of sequence.
    """
    batch = to_device(fmt.generation_batch(items, tokenizer, max_length), next(model.parameters()).device)
    inputs = {k: v for k, v in batch.items() if k != "task_ids"}
    stop = {"eos_token_id": eos_id(tokenizer)} if isinstance(fmt, SFTFormat) else {}
    sequences = model_generate(model)(
        inputs,
        batch["task_ids"],
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        **stop,
    )
    new_tokens = sequences if fmt.encoder_decoder else sequences[:, inputs["input_ids"].shape[1] :]
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


def rouge_l(generated: list[str], references: list[str], *, first_line: bool = False) -> float:
    """Mean ROUGE-L F1 (``rouge-score``, its default tokenizer) of the stripped generations (``first_line``: only
    their first line, as a label word is read) against the references; 0.0 for no pairs."""
    values = rouge_l_scores(generated, references, first_line=first_line)
    return sum(values) / max(1, len(values))


def rouge_l_scores(generated: list[str], references: list[str], *, first_line: bool = False) -> list[float]:
    """ROUGE-L F1 of each stripped generation against its reference (see :func:`rouge_l`, their mean)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    pairs = zip(generated, references, strict=True)
    return [scorer.score(ref, _answer(gen, first_line)).get("rougeL").fmeasure for gen, ref in pairs]


def exact_match(generated: list[str], references: list[str], *, first_line: bool = False) -> float:
    """Share of generations equal to their reference, whitespace-normalised and case-insensitive; 0.0 for none."""
    pairs = zip(generated, references, strict=True)
    hits = [_normal(_answer(gen, first_line)) == _normal(ref) for gen, ref in pairs]
    return sum(hits) / max(1, len(hits))


def _answer(generated: str, first_line: bool) -> str:
    text = generated.strip()
    return text.split("\n")[0] if first_line else text


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()
