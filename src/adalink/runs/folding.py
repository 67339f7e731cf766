"""One task of a finished run folded into its base, saved as a plain checkpoint that ``transformers`` (and vLLM) load
without adalink: ``adalink merge`` (:func:`merge_run`) and ``adalink serve --engine vllm --fold`` (one folded
checkpoint per task) both call :func:`fold_task`. The fold itself is the method's own
(``PeftModel.merge_and_unload``; AdaLink's is :mod:`adalink.methods.adalink.folding`: the link merged into the
vocabulary table, a tied head untied).

The base is rebuilt from the run's ``run.json`` alone (:mod:`.base_model`): folding needs no task format, only the
tasks' labels, to cut a classifier's multi-task head down to the folded task's (:func:`adalink.models.heads.
keep_task_head`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..models.heads import keep_task_head
from ..models.precision import DTYPES, BaseLoading, stored_dtype
from .base_model import base_tokenizer, load_run_model, read_run

__all__ = ["FoldedTask", "fold_task", "merge_run"]


@dataclass(frozen=True)
class FoldedTask:
    """A plain checkpoint written by :func:`fold_task`."""

    task: str  # the task folded in
    path: Path  # the checkpoint directory (config, weights, tokenizer)
    architecture: str  # the saved model's class, e.g. "Qwen2ForCausalLM"
    dtype: str  # the dtype the weights are saved in


def merge_run(directory: str | Path, out: str | Path, *, task: str | None = None, dtype: str | None = None) -> Path:
    """``adalink merge``: :func:`fold_task`, then say what was written."""
    folded = fold_task(directory, out, task=task, dtype=dtype)
    print(
        f"Folded task {folded.task!r} of {directory} into a plain {folded.architecture} checkpoint ({folded.dtype}) "
        f"at {folded.path}."
    )
    return folded.path


def fold_task(
    directory: str | Path, out: str | Path, *, task: str | None = None, dtype: str | None = None
) -> FoldedTask:
    """Fold the adapter (one task) of the run in ``directory`` into a plain checkpoint at ``out``.

    The adapter is folded into the float32 base, whatever dtype or quantization it trained on (it loads there: its
    fingerprint is the float32 one), and the checkpoint is saved in ``dtype``: by default the dtype the base
    checkpoint is stored in (a fully fine-tuned run's own model: float32).

    Raises:
        UsageError: ``dtype`` is not a dtype adalink knows, ``task`` is not one of the run's tasks, or the run has
            several tasks and ``task`` is None.
        FoldError: The run's method cannot be folded into the base weights.
    """
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"--dtype {dtype!r} is invalid: expected one of {list(DTYPES)}.")
    directory = Path(directory)
    run = read_run(directory)
    names = [t["name"] for t in run["tasks"]]
    if task is None:
        if len(names) > 1:
            raise UsageError(f"This run has tasks {names}: pass --task to choose the one to fold.")
        task = names[0]
    if task not in names:
        raise UsageError(f"--task {task!r} is not one of this run's tasks {names}.")
    loaded = load_run_model(directory, run, loading=BaseLoading())
    model = loaded.model.merge_and_unload(task=task)  # a method without tasks has one set of weights for all
    if run["format"] == "classification":
        keep_task_head(model, [(t["name"], t["label_names"]) for t in run["tasks"]], names.index(task))
    if dtype is None:
        dtype = "float32" if run["method"] == "full" else stored_dtype(loaded.base_path)
    model.to(DTYPES[dtype])
    out = Path(out)
    model.save_pretrained(out)
    (loaded.tokenizer or base_tokenizer(run, loaded.base_path)).save_pretrained(out)
    return FoldedTask(task, out, type(model).__name__, dtype)
