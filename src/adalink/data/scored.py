"""How many test examples of a packaged task a run scores (what a score's test-set sampling error depends on)."""

from __future__ import annotations

import functools

from ..errors import UsageError
from .easyvqa import load_easyvqa
from .text_tasks import TASK_NAMES, load_text_task

__all__ = ["scored_examples"]


@functools.cache
def scored_examples(task: str, max_eval: int | None, question_types: str | None = None) -> int:
    """How many test examples of a packaged ``task`` a run scores: the first ``max_eval`` of its test split (of the
    ``question_types`` only, for easy-VQA)."""
    if task in TASK_NAMES:
        available = len(load_text_task(task).test)
    elif task == "easyvqa":
        data = load_easyvqa()
        if question_types:
            data = data.with_question_types(tuple(question_types.split(",")))
        available = len(data.test)
    else:
        raise UsageError(f"task={task!r} is invalid: expected a packaged task ({', '.join(TASK_NAMES)}, easyvqa).")
    return available if max_eval is None else min(max_eval, available)
