"""One wrapper for every method: freeze the base, attach the method, route tasks, save, load, merge.

A method is a :class:`~adalink.methods.base.MethodConfig` that attaches itself without editing model code and
returns an :class:`~adalink.methods.base.Attachment`. The vocabulary of Hugging Face peft is mirrored:
:func:`get_peft_model`, :class:`PeftModel`, ``save_pretrained`` / ``from_pretrained`` / ``merge_and_unload``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .errors import ConfigError, FoldError, UsageError
from .fingerprint import base_fingerprint, check_fingerprint, check_same_kind_of_base
from .io import AdapterFileError, read_adapter, write_adapter
from .methods.base import MethodConfig, config_from_dict, select_task_rows
from .routing import Router, TaskSpec, UnknownTaskError

__all__ = ["PeftModel", "TaskSpec", "UnknownTaskError", "get_peft_model"]


def get_peft_model(model: nn.Module, config: MethodConfig) -> PeftModel:
    """Freeze ``model`` and attach the method described by ``config``. Before training, outputs are unchanged
    (for every method but full tuning, which trains the base itself)."""
    return PeftModel(model, config)


class PeftModel(nn.Module):
    """A frozen base model with one PEFT method attached.

    ``forward`` and ``generate`` take ``task=``: one name for the batch, a sequence of names (one per example), or a
    LongTensor of task indices; a mixed batch runs one forward of the backbone. Methods without tasks (full
    tuning, BitFit, LN tuning) accept ``task=`` and ignore it: one set of weights serves every task.
    The method's parameters live in a submodule named after the method (``model.adalink``, ``model.lora``, ...).
    """

    def __init__(self, model: nn.Module, config: MethodConfig) -> None:
        super().__init__()
        self.base_model = model
        self.peft_config = config
        self.router = Router(config.task_names)
        self._original_requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        model.requires_grad_(False)
        try:
            self._attachment = config.attach(model, self.router)
        except BaseException:
            self._restore_requires_grad()  # a refused attach leaves the model as it was given
            raise
        self.add_module(config.method, self._attachment.modules)
        self._set_trainable()
        self._fingerprint: dict[str, Any] | None = None

    @property
    def adapter_modules(self) -> nn.Module:
        """The method's own parameters (what ``save_pretrained`` writes, besides ``modules_to_save``)."""
        return self._attachment.modules

    def _set_trainable(self) -> None:
        for path in self.peft_config.modules_to_save:
            self._module_to_save(path).requires_grad_(True)
        for p in self._attachment.base_parameters.values():
            p.requires_grad_(True)
        self.adapter_modules.requires_grad_(True)

    def _module_to_save(self, path: str) -> nn.Module:
        try:
            return self.base_model.get_submodule(path)
        except AttributeError:
            raise ConfigError(
                f"{type(self.peft_config).__name__}.modules_to_save entry {path!r} is invalid: expected a dotted "
                f"module path in {type(self.base_model).__name__}."
            ) from None

    # ---------------------------------------------------------------------------------------------------- routing
    @property
    def task_names(self) -> list[str]:
        return list(self.router.tasks)

    def set_task(self, task: str | None) -> None:
        """Default task for calls that pass no ``task=`` (e.g. inside ``transformers.Trainer``)."""
        self.router.set_default(task)

    @staticmethod
    def _batch_size(args: tuple, kwargs: dict) -> int | None:
        for value in (*args[:1], kwargs.get("input_ids"), kwargs.get("inputs_embeds")):
            if isinstance(value, torch.Tensor) and value.dim() >= 1:
                return value.shape[0] if value.dim() > 1 else 1
        return None

    def _routed(self, task: TaskSpec, args: tuple, kwargs: dict) -> contextlib.AbstractContextManager:
        if not self.peft_config.has_tasks():  # one set of weights serves every task: task= changes nothing
            return contextlib.nullcontext()
        return self.router.route(task, self._batch_size(args, kwargs), self.adapter_device)

    # --------------------------------------------------------------------------------------------------- running
    def forward(self, *args: Any, task: TaskSpec = None, **kwargs: Any) -> Any:
        with self._routed(task, args, kwargs):
            return self.base_model(*args, **kwargs)

    def generate(self, *args: Any, task: TaskSpec = None, **kwargs: Any) -> Any:
        with self._routed(task, args, kwargs):
            return self.base_model.generate(*args, **kwargs)

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the plain base model inside this context."""
        with self.router.disable():
            yield

    @property
    def adapter_device(self) -> torch.device:
        first = next(self.adapter_modules.parameters(), None)
        return first.device if first is not None else next(self.base_model.parameters()).device

    adalink_device = adapter_device  # the name used before other methods existed

    def get_base_model(self) -> nn.Module:
        return self.base_model

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)  # config, generation_config, device, ... like peft

    # ----------------------------------------------------------------------------------------------- parameters
    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) parameter counts, counting shared (tied) parameters once."""
        params = {id(p): p for p in self.parameters()}.values()
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def method_parameter_count(self) -> int:
        """Trainable parameters of the method itself (not ``modules_to_save``)."""
        own = {id(p): p for p in self.adapter_modules.parameters()}
        own.update({id(p): p for p in self._attachment.base_parameters.values()})
        return sum(p.numel() for p in own.values())

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        own = self.method_parameter_count()
        line = (
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )
        if trainable != own:
            line += f" ({self.peft_config.title()} {own:,d} + "
            line += f"modules_to_save {trainable - own:,d})"
        print(line)

    # ------------------------------------------------------------------------------------------------ save / load
    def base_fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:  # the base is frozen, so hash it once
            exclude = {id(p) for p in self.adapter_modules.parameters()}
            exclude |= {id(p) for p in self._attachment.base_parameters.values()}
            self._fingerprint = base_fingerprint(self.base_model, self._attachment.touched, exclude)
        return self._fingerprint

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        method = self.peft_config.method
        tensors = {f"{method}.{name}": p for name, p in self.adapter_modules.state_dict(keep_vars=True).items()}
        for name, p in self._attachment.base_parameters.items():
            tensors[f"base.{name}"] = p
        in_place = {id(p) for p in self._attachment.base_parameters.values()}
        for path in self.peft_config.modules_to_save:  # a module the method already trains in place is saved once
            for pname, p in self._module_to_save(path).state_dict(keep_vars=True).items():
                if id(p) not in in_place:
                    tensors[f"modules_to_save.{path}.{pname}"] = p
        return tensors

    def save_pretrained(self, save_directory: str | os.PathLike, *, format: str = "adalink", **_: Any) -> None:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (the method's weights only), atomically.

        ``format="peft"`` writes Hugging Face peft's own format instead, one adapter directory per task (see
        :func:`adalink.export.export_peft`), for methods peft has; others raise ``adalink.export.ExportError``.
        """
        if format == "peft":
            from .export.convert import export_peft

            export_peft(self, save_directory)
            return
        if format != "adalink":
            raise UsageError(f"save_pretrained format={format!r} is invalid: expected 'adalink' or 'peft'.")
        metadata = {
            "adalink_version": __version__,
            "method": self.peft_config.method,
            "config": self.peft_config.to_dict(),
            "base_model": self.base_fingerprint(),
            "base_model_name_or_path": getattr(getattr(self.base_model, "config", None), "name_or_path", None),
        }
        write_adapter(save_directory, self.adapter_state_dict(), metadata)

    @classmethod
    def from_pretrained(
        cls,
        model: nn.Module,
        adapter_dir: str | os.PathLike,
        *,
        tasks: Sequence[str] | None = None,
        is_trainable: bool = False,
        ignore_fingerprint: bool = False,
    ) -> PeftModel:
        """Attach a saved adapter to ``model``, refusing a different base model unless ``ignore_fingerprint``.

        ``tasks`` loads a subset of the saved tasks (all by default); a task the file lacks is refused.
        """
        document, tensors = read_adapter(adapter_dir)
        try:
            config = config_from_dict(document.get("method", "adalink"), document["config"])
        except (KeyError, TypeError, ConfigError) as err:
            raise AdapterFileError(f"{adapter_dir}: invalid adapter config ({err}).") from None
        if not ignore_fingerprint:  # a base of another kind is named before attaching can fail on a missing module
            check_same_kind_of_base(document.get("base_model", {}), model, str(adapter_dir))
        peft_model = cls(model, config)
        if not ignore_fingerprint:
            check_fingerprint(document.get("base_model", {}), peft_model.base_fingerprint(), str(adapter_dir))
        peft_model._load_tensors(tensors, str(adapter_dir))
        if tasks is not None:
            peft_model.select_tasks(tasks)
        if not is_trainable:
            peft_model.requires_grad_(False)
            peft_model.eval()
        return peft_model

    def _load_tensors(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        expected = self.adapter_state_dict()
        missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise AdapterFileError(
                f"{source}: tensors do not match the config: missing {missing}, unexpected {unexpected}."
            )
        for name, target in expected.items():
            if tensors[name].shape != target.shape:
                raise AdapterFileError(
                    f"{source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, this model expects "
                    f"{tuple(target.shape)}."
                )
            with torch.no_grad():
                target.copy_(tensors[name])
        if self._attachment.loaded is not None:
            self._attachment.loaded()

    def select_tasks(self, tasks: Sequence[str]) -> None:
        """Keep only ``tasks`` (in that order); every name must exist."""
        if not self.peft_config.has_tasks():
            raise ConfigError(f"Method {self.peft_config.method!r} has no tasks to select.")
        for task in tasks:
            self.router.index(task)  # check every name before changing anything
        num_tasks = len(self.router.tasks)
        indices = self.router.select(tasks)
        select_task_rows(self.adapter_modules, indices, num_tasks)
        self.peft_config.tasks = list(tasks)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------------------- merge / unload
    def unload(self) -> nn.Module:
        """Undo the method and return the base model as it was (original ``requires_grad`` restored)."""
        for handle in reversed(self._attachment.handles):
            handle.remove()
        self._attachment.handles = []
        self._restore_requires_grad()
        return self.base_model

    def _restore_requires_grad(self) -> None:
        for name, p in self.base_model.named_parameters():
            p.requires_grad_(self._original_requires_grad.get(name, p.requires_grad))

    def merge_and_unload(self, task: str | None = None) -> nn.Module:
        """Fold one task's adapter into the base weights and return a plain model with no extra modules; a method
        without tasks ignores ``task`` (one set of weights serves every task)."""
        if self._attachment.merge is None:
            raise FoldError(
                f"Method {self.peft_config.method!r} cannot be merged into the base weights: it changes the "
                "computation, not only weights. Serve it unmerged (or use unload() to get the base back)."
            )
        if task is None and len(self.router.tasks) > 1:
            raise UnknownTaskError(f"merge_and_unload needs task= one of {self.router.tasks}.")
        index = self.router.index(task) if task is not None and self.peft_config.has_tasks() else 0
        self._attachment.merge(index)
        return self.unload()
