"""A run's transformers base model: a classifier with one new head over every task's labels, or a language model;
and the head cut down to one task's labels when a run is folded into a plain checkpoint.

These are the models alone. How a task's examples become batches and answers is its format's
(:mod:`adalink.tasks.formats`), which builds its base through :func:`load_classifier` and :func:`load_language_model`;
``adalink merge`` (:mod:`adalink.runs.folding`) builds the same base from a run's ``run.json`` without any format.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from ..errors import UsageError
from .precision import BaseLoading, load_base

__all__ = ["HEAD_NAMES", "head_modules", "keep_task_head", "load_classifier", "load_language_model"]

HEAD_NAMES = ("classifier", "score")  # where transformers' sequence classifiers keep their head (BERT..., Llama...)
Labels = Sequence[tuple[str, Sequence[str]]]  # (task name, its label names) of each task, in the run's order


def head_modules(model: nn.Module) -> list[str]:
    """The path of a sequence classifier's head (``[]`` for a model without one)."""
    return [name for name in HEAD_NAMES if isinstance(getattr(model, name, None), nn.Module)][:1]


def _offsets(labels: Labels) -> list[int]:
    """Where each task's labels start among the head's outputs (the tasks' labels one after another)."""
    sizes = [len(names) for _, names in labels]
    return [sum(sizes[:i]) for i in range(len(sizes))]


def load_classifier(path: str, labels: Labels, *, seed: int, loading: BaseLoading | None = None) -> nn.Module:
    """The encoder with a new head over every task's labels (``task:label``, initialised from ``seed``); ``loading``:
    dtype, quantization and checkpointing of the frozen base (the head stays float32)."""
    id2label = {
        offset + j: f"{task}:{label}"
        for (task, names), offset in zip(labels, _offsets(labels), strict=True)
        for j, label in enumerate(names)
    }
    torch.manual_seed(seed)  # the new head's init
    return load_base(
        AutoModelForSequenceClassification,
        path,
        loading=loading or BaseLoading(),
        heads=head_modules,
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )


def load_language_model(
    path: str, *, encoder_decoder: bool, seed: int, loading: BaseLoading | None = None
) -> nn.Module:
    """The (encoder-)decoder language model; ``loading``: dtype, quantization and checkpointing of the frozen base."""
    torch.manual_seed(seed)
    auto_class = AutoModelForSeq2SeqLM if encoder_decoder else AutoModelForCausalLM
    return load_base(auto_class, path, loading=loading or BaseLoading())


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


def keep_task_head(model: nn.Module, labels: Labels, task: int) -> None:
    """Slice the multi-task head of ``model`` (built by :func:`load_classifier` over ``labels``) down to the labels of
    task number ``task``, so that the model is an ordinary classifier of that task."""
    (name,) = head_modules(model)
    name, head = _output_layer(name, model.get_submodule(name), sum(len(names) for _, names in labels))
    names = list(labels[task][1])
    start = _offsets(labels)[task]
    rows = slice(start, start + len(names))
    sliced = nn.Linear(head.in_features, len(names), bias=head.bias is not None)
    with torch.no_grad():
        sliced.weight.copy_(head.weight[rows])
        if head.bias is not None:
            sliced.bias.copy_(head.bias[rows])
    parent, _, attribute = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, attribute, sliced)
    model.config.num_labels = len(names)
    model.config.id2label = dict(enumerate(names))
    model.config.label2id = {label: i for i, label in enumerate(names)}
    model.num_labels = len(names)  # type: ignore[assignment]  # an int; Module types attributes Tensor | Module
