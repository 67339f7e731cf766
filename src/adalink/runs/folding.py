"""Fold one task of a finished run into a plain checkpoint that ``transformers`` (and vLLM) load without adalink.

``adalink merge`` (:func:`adalink.training.artifacts.merge_run`) and ``adalink serve --engine vllm --fold`` (one
folded checkpoint per task, :mod:`adalink.serve.vllm_fold`) both call :func:`fold_task`. The fold itself is the
method's own (``PeftModel.merge_and_unload``; AdaLink's is :mod:`adalink.methods.adalink.folding`: the link merged
into the vocabulary table, a tied head untied); here the run is loaded, a multi-task classification head is cut down
to the task's labels, and the checkpoint is saved with the tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..models.precision import DTYPES, BaseLoading, stored_dtype
from ..tasks.formats import ClassificationFormat
from .reading import load_run

__all__ = ["FoldedTask", "fold_task"]


@dataclass(frozen=True)
class FoldedTask:
    """A plain checkpoint written by :func:`fold_task`."""

    task: str  # the task folded in
    path: Path  # the checkpoint directory (config, weights, tokenizer)
    architecture: str  # the saved model's class, e.g. "Qwen2ForCausalLM"
    dtype: str  # the dtype the weights are saved in


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
    loaded = load_run(directory, loading=BaseLoading())
    names = loaded.task_names
    if task is None:
        if len(names) > 1:
            raise UsageError(f"This run has tasks {names}: pass --task to choose the one to fold.")
        task = names[0]
    if task not in names:
        raise UsageError(f"--task {task!r} is not one of this run's tasks {names}.")
    model = loaded.model.merge_and_unload(task=task)  # a method without tasks has one set of weights for all
    if isinstance(loaded.fmt, ClassificationFormat):
        _keep_task_head(model, loaded.fmt, names.index(task))
    if dtype is None:
        dtype = "float32" if loaded.run["method"] == "full" else stored_dtype(loaded.base_path)
    model.to(DTYPES[dtype])
    out = Path(out)
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return FoldedTask(task, out, type(model).__name__, dtype)


def _output_layer(name: str, head: nn.Module, outputs: int) -> tuple[str, nn.Linear]:
    """(path, layer) of the head's layer that gives one score per label: the head itself (BERT, Llama: a Linear), or
    its last Linear with that many outputs (RoBERTa, ELECTRA: dense -> out_proj)."""
    if isinstance(head, nn.Linear):
        return name, head
    found = [
        (f"{name}.{n}", m) for n, m in head.named_modules() if isinstance(m, nn.Linear) and m.out_features == outputs
    ]
    if not found:
        raise UsageError(f"The classification head {name!r} has no Linear layer with {outputs} outputs to slice.")
    return found[-1]


def _keep_task_head(model: nn.Module, fmt: ClassificationFormat, task: int) -> None:
    """Slice the multi-task head down to one task's labels, so the checkpoint is an ordinary classifier."""
    (name,) = fmt.head_modules(model)
    name, head = _output_layer(name, model.get_submodule(name), sum(len(t.label_names) for t in fmt.tasks))
    labels = fmt.tasks[task].label_names
    rows = slice(fmt.offsets[task], fmt.offsets[task] + len(labels))
    sliced = nn.Linear(head.in_features, len(labels), bias=head.bias is not None)
    with torch.no_grad():
        sliced.weight.copy_(head.weight[rows])
        if head.bias is not None:
            sliced.bias.copy_(head.bias[rows])
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, sliced)
    model.config.num_labels = len(labels)
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.num_labels = len(labels)  # type: ignore[assignment]  # an int; Module types attributes Tensor | Module
