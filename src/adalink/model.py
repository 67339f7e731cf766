"""Attach AdaLink to a frozen transformers model without touching its code, and route tasks per example.

AdaLink sits on module-output boundaries through removable forward hooks: the model's blocks, their code and their
computation graph are unchanged (paper §3.2, "non-intrusive"). The vocabulary of Hugging Face peft is mirrored:
:func:`get_peft_model`, :class:`PeftModel`, ``save_pretrained`` / ``from_pretrained`` / ``merge_and_unload``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

from ._version import __version__
from .config import AdaLinkConfig, ConfigError
from .fingerprint import base_fingerprint, check_fingerprint
from .folding import FoldError, check_foldable, fold_site
from .io import AdapterFileError, read_adapter, write_adapter
from .layer import AdaLinkBank, TaskIds
from .sites import Site, resolve_sites

__all__ = ["PeftModel", "TaskSpec", "UnknownTaskError", "get_peft_model"]

# A task for the whole batch (name), one name per example, or task indices (e.g. from a collator).
TaskSpec = str | Sequence[str] | torch.Tensor | None

_UNIFIED = "unified"


class UnknownTaskError(KeyError):
    """A task name that the adapter does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


def get_peft_model(model: nn.Module, config: AdaLinkConfig) -> PeftModel:
    """Freeze ``model`` and attach the AdaLinks described by ``config``. Before training, outputs are unchanged."""
    return PeftModel(model, config)


class PeftModel(nn.Module):
    """A frozen base model with AdaLink hooks at its input boundaries.

    ``forward`` and ``generate`` take ``task=``: one name for the batch, a sequence of names (one per example), or a
    LongTensor of task indices. A mixed batch runs one forward of the backbone.
    """

    def __init__(self, model: nn.Module, config: AdaLinkConfig) -> None:
        super().__init__()
        self.base_model = model
        self.peft_config = config
        self._sites = resolve_sites(model, config)
        self.adalink = nn.ModuleDict(self._build_banks())
        self._original_requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
        self._set_trainable()
        self._routing: ContextVar[TaskIds | None] = ContextVar(f"adalink_routing_{id(self)}", default=None)
        self._default_task: int | None = 0 if len(config.tasks) == 1 else None
        self._disabled = False
        self._handles = self._register_hooks()
        self._fingerprint: dict[str, Any] | None = None

    # ----------------------------------------------------------------------------------------------- construction
    def _build_banks(self) -> dict[str, AdaLinkBank]:
        cfg = self.peft_config
        kwargs = {"dropout": cfg.dropout, "activation": cfg.activation, "init": cfg.init}
        dims = {site.modality: site.dim for site in self._sites}
        if cfg.unified:
            return {_UNIFIED: AdaLinkBank(len(cfg.tasks), next(iter(dims.values())), cfg.rank, **kwargs)}
        return {modality: AdaLinkBank(len(cfg.tasks), dim, cfg.rank, **kwargs) for modality, dim in dims.items()}

    def _bank(self, site: Site) -> AdaLinkBank:
        return self.adalink[_UNIFIED if self.peft_config.unified else site.modality]

    def _set_trainable(self) -> None:
        self.base_model.requires_grad_(False)
        for path in self.peft_config.modules_to_save:
            self._module_to_save(path).requires_grad_(True)
        self.adalink.requires_grad_(True)

    def _module_to_save(self, path: str) -> nn.Module:
        try:
            return self.base_model.get_submodule(path)
        except AttributeError:
            raise ConfigError(
                f"AdaLinkConfig.modules_to_save entry {path!r} is invalid: expected a dotted module path in "
                f"{type(self.base_model).__name__}."
            ) from None

    def _register_hooks(self) -> list[torch.utils.hooks.RemovableHandle]:
        handles = []
        for site in self._sites:
            handles.append(site.module.register_forward_hook(self._output_hook(site)))
            if site.embeds_entry is not None:  # callers may bypass the embedding with inputs_embeds=
                hook = self._embeds_hook(site)
                handles.append(site.embeds_entry.register_forward_pre_hook(hook, with_kwargs=True))
        return handles

    def _output_hook(self, site: Site):
        bank = self._bank(site)

        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
            if self._disabled:
                return None
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"AdaLink on {site.path!r} expects a tensor output, got {type(output).__name__}.")
            return bank(output, self._task_ids_for(output.shape[0] if output.dim() > 1 else 1, site))

        return hook

    def _embeds_hook(self, site: Site):
        bank = self._bank(site)

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
            embeds = kwargs.get("inputs_embeds")
            if self._disabled or embeds is None:
                return None
            kwargs["inputs_embeds"] = bank(embeds, self._task_ids_for(embeds.shape[0], site))
            return args, kwargs

        return hook

    # ---------------------------------------------------------------------------------------------------- routing
    @property
    def task_names(self) -> list[str]:
        return list(self.peft_config.tasks)

    def set_task(self, task: str | None) -> None:
        """Default task for calls that pass no ``task=`` (e.g. inside ``transformers.Trainer``)."""
        self._default_task = None if task is None else self._task_index(task)

    def _task_index(self, name: str) -> int:
        try:
            return self.peft_config.tasks.index(name)
        except ValueError:
            raise UnknownTaskError(f"Unknown task {name!r}; this adapter has tasks {self.peft_config.tasks}.") from None

    def _resolve_task(self, task: TaskSpec, batch_size: int | None) -> TaskIds:
        if task is None:
            if self._default_task is None:
                raise UnknownTaskError(
                    f"No task given and no default task: pass task= one of {self.peft_config.tasks} "
                    "(or one name per example), or call set_task(name)."
                )
            return self._default_task
        if isinstance(task, str):
            return self._task_index(task)
        if isinstance(task, torch.Tensor):
            ids = task.to(device=self.adalink_device, dtype=torch.long).reshape(-1)
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self.peft_config.tasks)):
                raise UnknownTaskError(
                    f"Task indices must lie in [0, {len(self.peft_config.tasks)}) for tasks {self.peft_config.tasks}; "
                    f"got min {int(ids.min())}, max {int(ids.max())}."
                )
        else:
            names = list(task)
            indices = [self._task_index(name) for name in names]
            if len(set(indices)) == 1 and batch_size in (None, len(indices)):
                return indices[0]  # a homogeneous batch takes the plain-matmul path
            ids = torch.tensor(indices, dtype=torch.long, device=self.adalink_device)
        if batch_size is not None and ids.numel() != batch_size:
            raise ValueError(f"task= has {ids.numel()} entries but the batch has {batch_size} examples.")
        return ids

    def _task_ids_for(self, rows: int, site: Site) -> TaskIds:
        ids = self._routing.get()
        if ids is None:
            ids = self._resolve_task(None, None)
        if isinstance(ids, int) or rows == ids.shape[0]:
            return ids
        if rows % ids.shape[0] == 0:  # generate() expanded the batch (beams, num_return_sequences): repeat_interleave
            return ids.repeat_interleave(rows // ids.shape[0])
        raise ValueError(
            f"Per-example tasks cover {ids.shape[0]} examples, but the adapted module {site.path!r} "
            f"(modality {site.modality!r}) produced a batch of {rows}; per-example routing needs one row "
            "(e.g. one image) per example. Use one task for the whole batch instead."
        )

    @contextlib.contextmanager
    def _routed(self, task: TaskSpec, batch_size: int | None) -> Iterator[None]:
        if self._disabled and task is None:  # the plain base model needs no task
            yield
            return
        token = self._routing.set(self._resolve_task(task, batch_size))
        try:
            yield
        finally:
            self._routing.reset(token)

    @staticmethod
    def _batch_size(args: tuple, kwargs: dict) -> int | None:
        for value in (*args[:1], kwargs.get("input_ids"), kwargs.get("inputs_embeds")):
            if isinstance(value, torch.Tensor) and value.dim() >= 1:
                return value.shape[0] if value.dim() > 1 else 1
        return None

    # --------------------------------------------------------------------------------------------------- running
    def forward(self, *args: Any, task: TaskSpec = None, **kwargs: Any) -> Any:
        with self._routed(task, self._batch_size(args, kwargs)):
            return self.base_model(*args, **kwargs)

    def generate(self, *args: Any, task: TaskSpec = None, **kwargs: Any) -> Any:
        with self._routed(task, self._batch_size(args, kwargs)):
            return self.base_model.generate(*args, **kwargs)

    @contextlib.contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Run the plain base model inside this context."""
        previous, self._disabled = self._disabled, True
        try:
            yield
        finally:
            self._disabled = previous

    @property
    def adalink_device(self) -> torch.device:
        return next(self.adalink.parameters()).device

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

    def print_trainable_parameters(self) -> None:
        trainable, total = self.get_nb_trainable_parameters()
        adalink = sum(p.numel() for p in self.adalink.parameters())
        line = (
            f"trainable params: {trainable:,d} || all params: {total:,d} || trainable%: {100 * trainable / total:.4f}"
        )
        if trainable != adalink:
            line += f" (AdaLink {adalink:,d} + modules_to_save {trainable - adalink:,d})"
        print(line)

    # ------------------------------------------------------------------------------------------------ save / load
    def base_fingerprint(self) -> dict[str, Any]:
        if self._fingerprint is None:  # the base is frozen, so hash it once
            self._fingerprint = base_fingerprint(self.base_model, self._sites)
        return self._fingerprint

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        tensors = {
            f"adalink.{name}.{pname}": p for name, bank in self.adalink.items() for pname, p in bank.named_parameters()
        }
        for path in self.peft_config.modules_to_save:
            for pname, p in self._module_to_save(path).state_dict().items():
                tensors[f"modules_to_save.{path}.{pname}"] = p
        return tensors

    def save_pretrained(self, save_directory: str | os.PathLike, **_: Any) -> None:
        """Write ``adapter_config.json`` and ``adapter_model.safetensors`` (AdaLink weights only), atomically."""
        metadata = {
            "adalink_version": __version__,
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
            config = AdaLinkConfig.from_dict(document["config"])
        except (KeyError, TypeError, ConfigError) as err:
            raise AdapterFileError(f"{adapter_dir}: invalid adapter config ({err}).") from None
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

    def select_tasks(self, tasks: Sequence[str]) -> None:
        """Keep only ``tasks`` (in that order); every name must exist."""
        indices = [self._task_index(task) for task in tasks]
        if not indices:
            raise ValueError("select_tasks needs at least one task name.")
        for bank in self.adalink.values():
            bank.select_tasks(indices)
        self.peft_config.tasks = list(tasks)
        self._default_task = 0 if len(indices) == 1 else None

    # ------------------------------------------------------------------------------------------- merge / unload
    def unload(self) -> nn.Module:
        """Remove the hooks and return the base model exactly as it was (original ``requires_grad`` restored)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        for name, p in self.base_model.named_parameters():
            p.requires_grad_(self._original_requires_grad.get(name, p.requires_grad))
        return self.base_model

    def merge_and_unload(self, task: str | None = None) -> nn.Module:
        """Fold one task's AdaLink into the adapted weights and return a plain model with no extra modules."""
        if not self.peft_config.is_foldable:
            raise FoldError(
                f"Cannot fold an AdaLink with activation={self.peft_config.activation!r}: folding is exact only for "
                "the identity activation (activation=None). Serve it unmerged instead."
            )
        if task is None and len(self.peft_config.tasks) > 1:
            raise UnknownTaskError(f"merge_and_unload needs task= one of {self.peft_config.tasks}.")
        index = self._task_index(task) if task is not None else 0
        for site in self._sites:  # check every site first so a failure leaves the model untouched
            check_foldable(site)
        model = self.unload()
        for site in self._sites:
            fold_site(model, site, self._bank(site).linear_map(index))
        return model
