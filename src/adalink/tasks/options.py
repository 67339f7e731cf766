"""The options of a run that choose its tasks, their data and its format.

:class:`adalink.training.args.TrainArgs` holds them (with the rest of ``adalink train``'s options); this protocol names
just these, so that loading a run's tasks (:func:`adalink.runs.loading.load_tasks`, :func:`.sft.load_sft_tasks`)
needs no part of the training harness.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["TaskOptions"]


class TaskOptions(Protocol):
    task: str  # comma-separated packaged task names
    format: str  # "auto", "classification", "text2text" or "sft"
    train_file: str | None  # the user's own data instead of packaged tasks
    task_name: str | None  # the name of that task (None: from the file's name)
    eval_file: str | None
    text_column: str
    label_column: str
    question_types: str | None  # easy-VQA: the question types kept
    prompt_column: str  # sft: the columns of --train-file
    response_column: str
    max_new_tokens: int  # sft: the longest generated response
