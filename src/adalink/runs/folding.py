"""``adalink merge``: a run's adapter folded into its base, saved as a plain checkpoint that ``transformers`` loads
without adalink.

The base is rebuilt from the run's ``run.json`` alone (:mod:`.base_model`): folding needs no task format, only the
tasks' labels, to cut a classifier's multi-task head down to the folded task's (:func:`adalink.models.heads.
keep_task_head`).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from ..models.heads import keep_task_head
from ..models.precision import DTYPES, BaseLoading, stored_dtype
from .base_model import base_tokenizer, load_run_model, read_run

__all__ = ["merge_run"]


def merge_run(directory: str | Path, out: str | Path, *, task: str | None = None, dtype: str | None = None) -> Path:
    """Fold the adapter (one task) into a plain checkpoint that ``transformers`` loads without adalink.

    The adapter is folded into the float32 base, whatever dtype or quantization it trained on (it loads there: its
    fingerprint is the float32 one), and the checkpoint is saved in ``dtype``: by default the dtype the base
    checkpoint is stored in (a fully fine-tuned run's own model: float32).
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
    print(f"Folded task {task!r} of {directory} into a plain {type(model).__name__} checkpoint ({dtype}) at {out}.")
    return out
