"""Export an adalink model to Hugging Face peft's own format: one standard peft adapter directory per task.

Layout (peft's own, as its ``save_pretrained`` writes several adapters): the task named ``default`` (the only task
of a config without ``tasks``) goes to ``out_dir`` itself, every other task to ``out_dir/<task>/``. Each directory
holds ``adapter_config.json`` + ``adapter_model.safetensors`` (load it with
``peft.PeftModel.from_pretrained(base, directory)``) and ``adalink_task.json`` (the task, its source and, from a
training run, its labels or prompt template).

What each method becomes (exact: same logits in evaluation, see each converter's module):

==================  =================================================================================
adalink             LORA on the adapted embedding module(s) (or Linear, with ``lora_bias``), scaling 1
lora, lora_all      LORA (fused GPT-2 slices: one higher-rank LoRA per layer)
dora                LORA with ``use_dora``
ia3                 IA3
krona               LOKR with undecomposed factors
prompt_tuning       PROMPT_TUNING (the evaluated prompt)
prefix_tuning       PREFIX_TUNING without projection (the evaluated prefix)
ln_tuning           LN_TUNING
==================  =================================================================================

Every other method is refused with :class:`ExportError` saying why (its config's ``peft_refusal``) and what to use
instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .._version import __version__
from .adalink_lora import adalink_to_lora
from .adapter import TASK_FILE, AdaptedModel, ExportError, PeftAdapter
from .heads import HeadRows, head_tensors, task_type
from .ia3 import ia3_to_ia3
from .ln_tuning import ln_tuning_to_peft
from .lokr import krona_to_lokr
from .lora import dora_to_lora, lora_to_lora
from .prompts import prefix_to_peft, prompt_to_peft

__all__ = ["CONVERTERS", "TaskDetails", "export_peft", "peft_adapter", "task_directory"]

Converter = Callable[[AdaptedModel, int], PeftAdapter]

# method -> converter of one task into a peft adapter (its config without the fields common to every method)
CONVERTERS: dict[str, Converter] = {
    "adalink": adalink_to_lora,
    "lora": lora_to_lora,
    "lora_all": lora_to_lora,
    "dora": dora_to_lora,
    "ia3": ia3_to_ia3,
    "krona": krona_to_lokr,
    "prompt_tuning": prompt_to_peft,
    "prefix_tuning": prefix_to_peft,
    "ln_tuning": ln_tuning_to_peft,
}

_PROMPT_LEARNING = ("PROMPT_TUNING", "PREFIX_TUNING")
SEQ_CLS_HEADS = ("classifier", "score")  # the heads peft's PeftModelForSequenceClassification always saves


@dataclass(frozen=True)
class TaskDetails:
    """What a training run knows about one exported task beyond the weights."""

    adapter_task: str | None = None  # the model's task whose weights are exported (None: the exported name itself)
    head: HeadRows | None = None  # this task's rows of a head shared by several tasks; None = the whole head
    info: dict[str, Any] = field(default_factory=dict)  # written into adalink_task.json (labels, prompt template)


def peft_adapter(model: AdaptedModel, task: str | None = None, *, head: HeadRows | None = None) -> PeftAdapter:
    """One task of ``model`` (``task`` may be omitted for single-task models) as a peft adapter in memory."""
    method = model.peft_config.method
    convert = CONVERTERS.get(method)
    if convert is None:
        raise ExportError(_refusal(method, model))
    names = model.task_names
    if task is None and len(names) > 1:
        raise ExportError(f"This {method} model has tasks {names}: name the task to export.")
    if task is not None and task not in names:
        raise ExportError(f"Task {task!r} is not one of this model's tasks {names}.")
    adapter = convert(model, names.index(task) if task is not None else 0)
    kind = task_type(model.base_model)
    prompt_learning = adapter.config["peft_type"] in _PROMPT_LEARNING
    if prompt_learning and kind is None:
        raise ExportError(
            f"Cannot export {method} for a {type(model.base_model).__name__}: peft runs prompt learning only on "
            "models with a task head it knows (sequence classification, causal LM, sequence-to-sequence LM)."
        )
    modules = list(model.peft_config.modules_to_save)
    if kind == "SEQ_CLS":  # peft saves (and expects to load) a sequence classifier's head with every SEQ_CLS adapter
        modules += [
            n for n in SEQ_CLS_HEADS if n not in modules and isinstance(getattr(model.base_model, n, None), nn.Module)
        ]
    prefix = "base_model." if prompt_learning else "base_model.model."
    adapter.tensors.update(head_tensors(model.base_model, modules, prefix, head))
    adapter.config.update(
        task_type=kind,
        base_model_name_or_path=getattr(getattr(model.base_model, "config", None), "name_or_path", None) or None,
        modules_to_save=modules or None,
        inference_mode=True,
    )
    return adapter


def export_peft(
    model: AdaptedModel,
    out_dir: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    details: Mapping[str, TaskDetails] | None = None,
) -> list[Path]:
    """Write each task of ``model`` (or only ``tasks``) as a peft adapter directory; returns the directories.

    Args:
        model: An :class:`adalink.PeftModel` whose method peft can hold (see the module docstring).
        out_dir: Root of the export: ``out_dir`` for the task ``default``, ``out_dir/<task>`` for the others.
        tasks: Names to export (default: the model's tasks, in order); each is a task of the model unless
            ``details`` maps it to one.
        details: Per exported name, the model task it comes from, head rows and a description (from a training
            run, see :func:`adalink.runs.export.export_run`).

    Raises:
        ExportError: The method, a setting or a task cannot be exported exactly; nothing is written then.
    """
    names = list(tasks) if tasks is not None else model.task_names
    details = details or {}
    adapters = {}
    for name in names:  # convert every task before writing any, so a refusal leaves out_dir untouched
        detail = details.get(name, TaskDetails())
        source = detail.adapter_task or name
        adapter = peft_adapter(model, source, head=detail.head)
        info = {
            "task": name,
            "method": model.peft_config.method,
            "adapter_task": source,
            "source_tasks": model.task_names,
            "exported_by": f"adalink {__version__}",
            **detail.info,
        }
        adapter.files[TASK_FILE] = json.dumps(info, indent=2, ensure_ascii=False)
        adapters[task_directory(out_dir, name)] = adapter
    return [adapter.save(directory) for directory, adapter in adapters.items()]


def task_directory(out_dir: str | os.PathLike, task: str) -> Path:
    """Where a task's adapter goes: ``out_dir`` for ``default``, else ``out_dir/<task>`` (peft's own layout)."""
    if task in ("", ".", "..") or any(sep in task for sep in ("/", "\\", os.sep)):
        raise ExportError(f"Task name {task!r} cannot name a directory: rename the task to export it.")
    return Path(out_dir) if task == "default" else Path(out_dir) / task


def _refusal(method: str, model: AdaptedModel) -> str:
    config = model.peft_config
    reason = config.peft_refusal or "there is no exact mapping to a peft method"
    if not config.shares_base:  # full tuning: there is no adapter to convert
        return f"Cannot export method {method!r} to peft: {reason}."
    if config.mergeable:
        instead = "use `adalink merge` (or merge_and_unload()) for a plain transformers checkpoint with it folded in"
    else:
        instead = "serve it with adalink (adalink serve, or adalink.PeftModel.from_pretrained)"
    return (
        f"Cannot export method {method!r} to peft: {reason}. Methods peft can load: {sorted(CONVERTERS)}; for this "
        f"one, {instead}."
    )
