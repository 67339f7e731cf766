"""The rules of what can share one forward pass, and how: read ``adalink train`` runs, check each one (an adapter,
a served format, per-task tensors) and what they must agree on, and stack their adapters into one.

Each run's per-task tensors (AdaLink: ``W_down`` (T, d, r) and ``W_up`` (T, r, d)) are concatenated along the task
dimension into one adapter of the same method, routed per example like a multi-task run. Ranks that differ are
zero-padded, which adds exactly 0: the extra columns of ``W_down`` give features that are 0, and the extra rows of
``W_up`` are 0. Classification heads are concatenated row-wise into one head over every task's labels, each example
scored on its own task's slice, as multi-task training does (:class:`~adalink.tasks.formats.ClassificationFormat`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AdalinkError
from ..io import AdapterFileError, read_adapter
from ..methods.base import MethodConfig, config_from_dict
from ..models.precision import BaseLoading
from ..peft_model import PeftModel
from ..runs.reading import read_run, run_shares_base
from ..tasks.formats import TaskInfo

__all__ = [
    "GENERATIVE_FORMATS",
    "SERVED_FORMATS",
    "AdapterConflictError",
    "AdapterRun",
    "IncompatibleAdapterError",
    "fill_stacked",
    "read_adapter_run",
    "served_as",
    "served_kind",
    "served_loading",
    "shared_fields",
    "stacked_config",
    "stacked_head",
]

# Formats whose runs generate text with the base's own LM head (decoders, encoder-decoders): they answer completions
# and chat. "sft" (supervised fine-tuning on prompt/response pairs) is served exactly as "text2text" is.
GENERATIVE_FORMATS = frozenset({"text2text", "sft"})
SERVED_FORMATS = ("classification", "text2text", "sft")
# Config fields that only shape training; adapters that differ in them still share one forward pass.
_TRAINING_ONLY = frozenset({"tasks", "modules_to_save", "dropout", "init"})


class IncompatibleAdapterError(AdalinkError, ValueError):
    """An adapter that cannot share the served base model or its forward pass."""


def served_as(format_name: str) -> str:
    """The format a server loads runs of ``format_name`` as: a generative run's base is a causal or
    sequence-to-sequence LM, as text-to-text's is; one server serves classification runs or generative runs."""
    return "text2text" if format_name in GENERATIVE_FORMATS else format_name


def served_kind(format_name: str) -> str:
    """The kind of runs a server of ``format_name`` serves, for error messages."""
    return f"generative ({', '.join(sorted(GENERATIVE_FORMATS))})" if format_name in GENERATIVE_FORMATS else format_name


class AdapterConflictError(AdalinkError, ValueError):
    """An adapter or task name that is already served."""


@dataclass
class AdapterRun:
    """An ``adalink train`` output directory read from disk and checked on its own, not yet served."""

    name: str
    directory: Path
    run: dict[str, Any]
    config: MethodConfig
    document: dict[str, Any]  # adapter_config.json (fingerprint of its base model, ...)
    tensors: dict[str, torch.Tensor]

    @property
    def tasks(self) -> list[TaskInfo]:
        return [TaskInfo(t["name"], tuple(t.get("label_names", ()))) for t in self.run["tasks"]]  # sft: no labels


def read_adapter_run(directory: str | os.PathLike, name: str | None = None) -> AdapterRun:
    """Read and verify one run directory (``run.json`` + adapter files); ``name`` defaults to the directory's name."""
    directory = Path(directory)
    run = read_run(directory)
    name = name or directory.resolve().name
    if not run_shares_base(run):
        raise IncompatibleAdapterError(
            f"{directory} holds a fully fine-tuned model, not an adapter: it cannot share a base model. Serve it "
            "from its own process, or use `adalink predict`."
        )
    if run.get("format") not in SERVED_FORMATS:
        raise IncompatibleAdapterError(
            f"{directory} is a {run.get('format')!r} run; the server serves text tasks ({', '.join(SERVED_FORMATS)})."
        )
    document, tensors = read_adapter(directory)
    try:
        config = config_from_dict(document.get("method", "adalink"), document["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise AdapterFileError(f"{directory}: invalid adapter config ({err}).") from None
    if "tasks" not in config.field_names():
        raise IncompatibleAdapterError(
            f"{directory}: method {config.method!r} keeps no per-task adapters, so its examples cannot be routed "
            "inside a shared batch. Serve it from its own process."
        )
    adapter = AdapterRun(name, directory, run, config, document, tensors)
    if [t.name for t in adapter.tasks] != config.task_names:
        raise AdapterFileError(f"{directory}: run.json and adapter_config.json name different tasks.")
    return adapter


def shared_fields(config: MethodConfig) -> dict[str, Any]:
    """The fields adapters stacked into one forward pass must agree on."""
    skip = _TRAINING_ONLY | config.zero_padded  # zero-padding the stacked tensors absorbs those (exact)
    return {k: v for k, v in config.to_dict().items() if k not in skip}


def stacked_config(profile: MethodConfig, configs: Sequence[MethodConfig], tasks: list[str]) -> MethodConfig:
    values = {**profile.to_dict(), "tasks": tasks, "modules_to_save": []}
    if "dropout" in values:
        values["dropout"] = 0.0  # serving never drops out
    for name in profile.zero_padded:
        values[name] = max(getattr(c, name) for c in configs)
    return type(profile).from_dict(values)


def fill_stacked(model: PeftModel, adapters: Sequence[AdapterRun]) -> None:
    """Copy every adapter's per-task tensors into its task rows of the stacked tensors, zero-padding the rest."""
    targets = {k: v for k, v in model.adapter_state_dict().items() if not k.startswith("modules_to_save.")}
    with torch.no_grad():
        for target in targets.values():
            target.zero_()
        offset = 0
        for adapter in adapters:
            count = len(adapter.tasks)
            own = {k for k in adapter.tensors if not k.startswith("modules_to_save.")}
            if own != set(targets):
                raise AdapterFileError(
                    f"{adapter.directory}: adapter tensors {sorted(own)} do not match the stacked adapter's "
                    f"{sorted(targets)}."
                )
            for name, target in targets.items():
                source = adapter.tensors[name]
                fits = source.dim() == target.dim() and source.shape[0] == count
                if not fits or any(s > t for s, t in zip(source.shape[1:], target.shape[1:], strict=True)):
                    raise AdapterFileError(
                        f"{adapter.directory}: tensor {name!r} has shape {tuple(source.shape)}; expected "
                        f"({count}, ...) within {tuple(target.shape[1:])} per task."
                    )
                corner = (slice(offset, offset + count), *(slice(0, s) for s in source.shape[1:]))
                target[corner] = source.to(target.dtype)
            offset += count


def stacked_head(path: str, adapters: Sequence[AdapterRun]) -> nn.Linear:
    """One Linear head whose rows are every adapter's head rows, in task order."""
    weights, biases = [], []
    for adapter in adapters:
        extra = [p for p in adapter.config.modules_to_save if p != path]
        weight = adapter.tensors.get(f"modules_to_save.{path}.weight")
        labels = sum(len(t.label_names) for t in adapter.tasks)
        if extra or weight is None or weight.dim() != 2 or weight.shape[0] != labels:
            raise IncompatibleAdapterError(
                f"{adapter.directory}: expected a trained head {path!r} with {labels} rows and no other "
                f"modules_to_save, found modules_to_save={adapter.config.modules_to_save}."
            )
        weights.append(weight)
        biases.append(adapter.tensors.get(f"modules_to_save.{path}.bias", torch.zeros(labels)))
    if len({w.shape[1] for w in weights}) > 1:
        widths = sorted({w.shape[1] for w in weights})
        raise IncompatibleAdapterError(f"The adapters' heads read features of different widths {widths}.")
    head = nn.Linear(weights[0].shape[1], sum(w.shape[0] for w in weights))
    with torch.no_grad():
        head.weight.copy_(torch.cat(weights))
        head.bias.copy_(torch.cat(biases))
    return head.requires_grad_(False)


def served_loading(adapters: Sequence[AdapterRun], *, dtype: str | None, quantize: str | None) -> BaseLoading:
    """How to hold the shared base: ``dtype`` and ``quantize`` where given, else what every adapter was trained on
    (``adalink eval`` scores a run on the base as it trained; serving it the same way answers the same)."""
    chosen = {"dtype": dtype, "quantize": quantize}
    loadings = [BaseLoading.from_options(a.run.get("args", {})) for a in adapters]
    for field, value in chosen.items():
        if value is not None:
            continue
        trained = sorted({getattr(loading, field) for loading in loadings})
        if len(trained) > 1:
            raise IncompatibleAdapterError(
                f"The adapters were trained on bases with different {field} {trained}; one server holds one base. "
                f"Choose it with --{field} (every adapter loads onto any {field}: their fingerprint is the float32 "
                "one)."
            )
        chosen[field] = trained[0] if trained else None
    return BaseLoading(dtype=chosen["dtype"] or "float32", quantize=chosen["quantize"] or "none")
