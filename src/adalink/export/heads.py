"""What surrounds the method's weights in a peft adapter: the task type and the trained ``modules_to_save``.

peft saves a module to save (a new classification head) whole under the base model's own parameter names:
``base_model.model.<path>.<param>`` for tuner methods (LoRA, IA3, ...) and ``base_model.<path>.<param>`` for
prompt learning, and lists the path in ``modules_to_save``. A sequence classifier's ``classifier`` / ``score`` is
added to that list by peft itself for ``task_type="SEQ_CLS"``.

A multi-task classification run trains one head over the labels of all its tasks; exporting one task keeps only
that task's rows (:class:`HeadRows`), so the exported head is an ordinary ``num_labels``-way head of that task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .adapter import ExportError

__all__ = ["HeadRows", "head_tensors", "task_type"]


@dataclass(frozen=True)
class HeadRows:
    """The rows ``[start, stop)`` of the shared head at ``module`` (a Linear) that belong to one task."""

    module: str  # dotted path of the head, one of the config's modules_to_save
    start: int
    stop: int


def task_type(model: nn.Module) -> str | None:
    """peft's ``task_type`` for a transformers model class (None: a model peft wraps without a task head)."""
    name = type(model).__name__
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) and name.endswith("ForConditionalGeneration"):
        return "SEQ_2_SEQ_LM"
    for suffix, kind in (
        ("ForSequenceClassification", "SEQ_CLS"),
        ("ForTokenClassification", "TOKEN_CLS"),
        ("ForQuestionAnswering", "QUESTION_ANS"),
        ("ForCausalLM", "CAUSAL_LM"),
        ("LMHeadModel", "CAUSAL_LM"),
    ):
        if name.endswith(suffix):
            return kind
    return None


def head_tensors(
    base: nn.Module, paths: list[str], prefix: str, rows: HeadRows | None = None
) -> dict[str, torch.Tensor]:
    """The tensors of each module to save under peft's names (``prefix`` + path), ``rows`` sliced out of one head."""
    tensors: dict[str, torch.Tensor] = {}
    for path in paths:
        module = base.get_submodule(path)
        state = {name: t.detach() for name, t in module.state_dict().items()}
        if rows is not None and rows.module == path:
            if not isinstance(module, nn.Linear):
                raise ExportError(
                    f"Cannot slice the head {path!r} to one task's labels: it is a {type(module).__name__}, "
                    "expected an nn.Linear."
                )
            state = {name: t[rows.start : rows.stop] for name, t in state.items()}  # weight (labels, d), bias
        tensors.update({f"{prefix}{path}.{name}": t.clone() for name, t in state.items()})
    return tensors
