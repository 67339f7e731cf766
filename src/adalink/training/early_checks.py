"""The options of ``adalink train`` (and of the commands that use a finished run) checked before anything loads.

Each check reads only names, the file system, a data file's header row (or first JSON object, or Parquet schema)
and a run's ``run.json``, so a mistyped option is refused in a fraction of a second instead of after the process
group, the data and the model have loaded. An unknown name is refused with the closest known ones
(``--task 'tweetz' ... Did you mean 'tweets'?``). The loaders keep their own checks: these only come first.

:meth:`adalink.training.args.TrainArgs.validate` calls :func:`check_train_options`; ``adalink eval``, ``predict``,
``merge`` and ``export`` call :func:`check_run_options`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.generation import MESSAGES_COLUMN
from ..data.tables import table_columns
from ..errors import MissingFileError, UsageError, did_you_mean
from ..models import MODEL_ALIASES, is_cached_hub_model
from ..runs.loading import VLM_ALIAS
from ..runs.reading import read_run
from ..tasks.formats import FORMATS
from ..tasks.options import TaskOptions
from ..tasks.sft import is_sft
from .name_checks import check_task_names

__all__ = ["MIXED_PRECISIONS", "OPTIMIZERS", "SCHEDULES", "check_model", "check_run_options", "check_train_options"]

OPTIMIZERS = ("adamw", "adafactor")  # AdamW, or the AdaLink paper's Adafactor (optimizer.py)
SCHEDULES = ("linear", "rsqrt")  # linear warmup, then linear or reciprocal square root decay (optimizer.py)
MIXED_PRECISIONS = ("no", "fp16", "bf16", "fp8")  # accelerate's PrecisionType


def check_train_options(
    data: TaskOptions, *, model: str, optimizer: str = "adamw", schedule: str = "linear", mixed_precision: str = "no"
) -> None:
    """Refuse an unknown optimizer, schedule, mixed precision, format, task or model, or a column that
    ``--train-file`` / ``--eval-file`` does not have, naming the flag, what was expected and the closest names.

    Raises:
        UsageError: An option that cannot work; DataFileError: a data file that is missing or unreadable.
    """
    for flag, value, known in (
        ("--optimizer", optimizer, OPTIMIZERS),
        ("--schedule", schedule, SCHEDULES),
        ("--mixed-precision", mixed_precision, MIXED_PRECISIONS),
        ("--format", data.format, FORMATS),
    ):
        if value not in known:
            raise UsageError(
                f"{flag} {value!r} is invalid: expected one of {', '.join(known)}.{did_you_mean(value, known)}"
            )
    if data.train_file:
        _check_columns(data)
    else:
        check_task_names(data.task)
        is_sft(data)  # refuses a generative task with --format classification or text2text
    check_model(model)


def _check_columns(args: TaskOptions) -> None:
    """The columns the run reads are in each file's first row (sft: prompt and response, or a chat ``messages``)."""
    if is_sft(args):
        wanted = (("--prompt-column", args.prompt_column), ("--response-column", args.response_column))
    else:
        wanted = (("--text-column", args.text_column), ("--label-column", args.label_column))
    for role, path in (("--train-file", args.train_file), ("--eval-file", args.eval_file)):
        columns = table_columns(path, role=role) if path else None
        if columns is None or (is_sft(args) and MESSAGES_COLUMN in columns):
            continue
        for flag, column in wanted:
            if column not in columns:
                chat = f", or a chat {MESSAGES_COLUMN!r} column" if is_sft(args) else ""
                raise UsageError(
                    f"{flag} {column!r} is invalid: expected a column of {role} {path} ({', '.join(columns)}{chat}); "
                    f"found no column {column!r}.{did_you_mean(column, columns)}"
                )


def check_model(model: str) -> None:
    """Refuse a ``--model`` that is no packaged alias, no existing path and no model in the offline hub cache."""
    aliases = (*MODEL_ALIASES, VLM_ALIAS)
    if model.strip().lower() in aliases or Path(model).expanduser().exists() or is_cached_hub_model(model):
        return
    local = Path(model).expanduser()
    nearby = _entries(local.parent) if os.sep in model else []  # a mistyped path: the names beside it
    hint = did_you_mean(model.strip().lower(), aliases) or did_you_mean(local.name, nearby)
    raise UsageError(
        f"--model {model!r} is invalid: expected a packaged alias ({', '.join(aliases)}), a local model directory or "
        f"a model in the offline Hugging Face cache; found no alias, no directory {local.absolute()} and no cached "
        f"model of that name.{hint}"
    )


def check_run_options(
    adapter: str, *, tasks: Sequence[str] = (), model: str | None = None, source: str | None = None
) -> dict[str, Any]:
    """The ``run.json`` of ``--adapter``, once ``--task`` (each of ``tasks``), ``--model`` and ``--input``
    (``source``; ``-`` is stdin) are known to fit it; before the run's base model loads.

    Raises:
        MissingFileError: ``--adapter`` is no run directory, or ``--input`` no file; UsageError: an unknown task
            or model.
    """
    directory = Path(adapter)
    if not directory.is_dir():
        hint = did_you_mean(directory.name, _entries(directory.parent))
        raise MissingFileError(f"--adapter {adapter}: expected an `adalink train` output directory, found none.{hint}")
    run = read_run(directory)
    names = [task["name"] for task in run.get("tasks", [])]
    for task in tasks:
        if task not in names:
            expected = f"one of this run's tasks ({', '.join(names)})"
            raise UsageError(f"--task {task!r} is invalid: expected {expected}.{did_you_mean(task, names)}")
    if model is not None:
        check_model(model)
    if source is not None and source != "-" and not Path(source).is_file():
        hint = did_you_mean(Path(source).name, _entries(Path(source).parent))
        raise MissingFileError(f"--input {source}: expected a file of requests (or - for stdin), found none.{hint}")
    return run


def _entries(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in directory.iterdir())
    except OSError:
        return []
