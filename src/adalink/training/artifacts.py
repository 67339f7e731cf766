"""Use a trained run directory: evaluate it, predict with it, fold it into a plain checkpoint.

The run is read and loaded by :func:`adalink.runs.reading.load_run` (what a run directory holds is written there);
folding is :func:`adalink.runs.folding.merge_run`, which builds the base without the task format.
An sft run (:mod:`adalink.tasks.sft`) predicts generated responses instead of labels, and is evaluated by ROUGE-L and
exact match.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO, Any

from ..data import (
    Example,
    GenerationExample,
    chat_example,
)
from ..errors import MissingFileError, UsageError
from ..io import write_atomic, write_json_atomic
from ..peft_model import PeftModel
from ..runs.folding import merge_run
from ..runs.loading import load_tasks
from ..runs.reading import LoadedRun, load_run
from ..tasks.evaluation import generate_texts, predict_batch
from ..tasks.examples import TaskExample
from ..tasks.formats import ClassificationFormat, TextToTextFormat
from ..tasks.sft import SFTFormat
from .args import TrainArgs

__all__ = ["evaluate_run", "merge_run", "predict_run"]


def evaluate_run(
    directory: str | Path,
    *,
    split: str = "test",
    max_eval: int | None = None,
    model: str | None = None,
    ignore_fingerprint: bool = False,
    base_only: bool = False,
    predictions: str | Path | None = None,
) -> dict[str, float]:
    """Score a run on ``split``, print and write ``eval-<split>.json``; returns the score per task.

    An sft run's score is ROUGE-L, and the file also holds ROUGE-L and exact match per task. ``base_only``: score
    the base model alone, the run's adapter disabled (``eval-<split>-base.json``): the zero-shot score with the
    run's own prompts, tokenizer and generation settings. ``predictions``: also write one JSON line per scored
    example there (:func:`adalink.tasks.evaluation.example_records`: task, index, score, reference, prediction),
    for paired comparisons of runs on the same examples.
    """
    if predictions is not None and Path(predictions).is_dir():
        raise UsageError(f"--predictions {predictions}: is a directory; expected the path of a file to write.")
    loaded = load_run(directory, model=model, ignore_fingerprint=ignore_fingerprint)
    datasets = load_tasks(TrainArgs(**loaded.run["args"]).data)
    generative: dict[str, dict[str, float]] = {}
    if isinstance(loaded.fmt, SFTFormat):
        generative = {"rouge_l": {}, "exact_match": {}}
    records: list[dict[str, Any]] | None = [] if predictions is not None else None
    with _adapter_disabled(loaded) if base_only else nullcontext():
        scores = loaded.evaluate(datasets, split=split, max_examples=max_eval, examples_out=records, **generative)
    if predictions is not None and records is not None:
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        Path(predictions).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(predictions, lambda tmp: Path(tmp).write_text(lines, encoding="utf-8"))
    result: dict[str, Any] = {"split": split, "score": sum(scores.values()) / len(scores), "per_task": scores}
    if generative:
        result = {"split": split, "metric": SFTFormat.metric, **result, **generative}
    write_json_atomic(loaded.directory / f"eval-{split}{'-base' if base_only else ''}.json", result)
    print(json.dumps(result, indent=2))
    return scores


def _adapter_disabled(loaded: LoadedRun) -> AbstractContextManager[None]:
    if not isinstance(loaded.model, PeftModel):
        raise UsageError(f"{loaded.directory} holds a fully fine-tuned model, not an adapter: it has no base to score.")
    return loaded.model.disable_adapter()


def _open_text(path: str, mode: str) -> IO[str]:
    """``path`` opened as UTF-8 text (the caller closes it); a missing file or folder is a :class:`MissingFileError`
    with the message ``open`` gives."""
    try:
        return open(path, mode, encoding="utf-8")
    except FileNotFoundError as err:
        raise MissingFileError(err.errno, err.strerror, err.filename) from None


def _read_lines(source: str) -> Iterator[tuple[int, str | dict[str, Any]]]:
    """(line number, the line or its JSON object) for every non-blank line of ``source`` (``-``: stdin)."""
    handle = sys.stdin if source == "-" else _open_text(source, "r")
    try:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if not line.lstrip().startswith("{"):
                yield number, line
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as err:
                raise UsageError(f"{source}, line {number}: invalid JSON ({err}).") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


def _read_requests(source: str, *, sft: bool) -> Iterator[tuple[int, Example | GenerationExample, str | None]]:
    """(line number, example, task or None) from plain text lines or JSONL objects: ``{"text": ..., "task": ...}``,
    or for an sft run ``{"prompt": ...}`` / ``{"messages": [...]}`` (chat turns before the answer) and a plain line
    is a prompt."""
    for number, item in _read_lines(source):
        where = f"{source}, line {number}"
        if isinstance(item, str):
            yield number, GenerationExample(item, "") if sft else Example(item, 0), None
        elif sft and "messages" in item:
            yield number, chat_example(item["messages"], where, with_response=False), item.get("task")
        elif sft:
            if not isinstance(item.get("prompt"), str) or not item["prompt"].strip():
                raise UsageError(f'{where}: expected a string field "prompt" or a "messages" list, found {item!r}.')
            yield number, GenerationExample(item["prompt"], ""), item.get("task")
        else:
            if not isinstance(item.get("text"), str):
                raise UsageError(f'{where}: expected a string field "text", found {item!r}.')
            yield number, Example(item["text"], 0), item.get("task")


def predict_run(
    directory: str | Path, source: str, target: str, *, default_task: str | None = None, batch_size: int = 32
) -> int:
    """Write one JSONL prediction per input line (sft: the generated response); returns the number of predictions."""
    loaded = load_run(directory)
    names = loaded.task_names
    if default_task is None and len(names) == 1:
        default_task = names[0]
    items: list[TaskExample] = []
    for number, example, task in _read_requests(source, sft=isinstance(loaded.fmt, SFTFormat)):
        task = task or default_task
        if task not in names:
            raise UsageError(
                f"{source}, line {number}: task {task!r} is not one of this run's tasks {names}"
                + ("; pass --task" if task is None else "")
                + "."
            )
        items.append(TaskExample(names.index(task), example))
    out = sys.stdout if target == "-" else _open_text(target, "w")
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            fmt = loaded.fmt
            records = _generations(loaded, fmt, chunk) if isinstance(fmt, SFTFormat) else _labels(loaded, fmt, chunk)
            out.writelines(json.dumps(record) + "\n" for record in records)
    finally:
        if out is not sys.stdout:
            out.close()
    return len(items)


def _labels(
    loaded: LoadedRun, fmt: ClassificationFormat | TextToTextFormat, chunk: list[TaskExample]
) -> list[dict[str, Any]]:
    details: list[Any] = []
    labels = predict_batch(loaded.model, fmt, loaded.tokenizer, chunk, loaded.run["max_length"], details)
    records = []
    for item, label, detail in zip(chunk, labels, details, strict=True):
        info = fmt.tasks[item.task]
        record = {
            "task": info.name,
            "text": item.example.text,
            "label": info.label_names[label] if label >= 0 else None,
        }
        if isinstance(detail, list):  # keyed by label, as the server's /v1/classify answers
            record["probabilities"] = dict(zip(info.label_names, detail, strict=True))
        else:
            record["generated"] = detail
        records.append(record)
    return records


def _generations(loaded: LoadedRun, fmt: SFTFormat, chunk: list[TaskExample]) -> list[dict[str, Any]]:
    texts = generate_texts(
        loaded.model,
        fmt,
        loaded.tokenizer,
        chunk,
        loaded.run["max_length"],
        loaded.max_new_tokens,
    )
    records = []
    for item, text in zip(chunk, texts, strict=True):
        example = item.example
        asked = {"prompt": example.prompt} if example.messages is None else {"messages": example.chat}
        records.append({"task": fmt.tasks[item.task].name, **asked, "generated": text.strip()})
    return records
