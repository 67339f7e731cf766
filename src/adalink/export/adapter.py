"""One task's adapter in Hugging Face peft's own on-disk format, held in memory until it is written.

peft reads an adapter directory as ``adapter_config.json`` (a ``PeftConfig`` as JSON, ``peft_type`` naming the
config class) and ``adapter_model.safetensors`` (tensors named as peft's ``save_pretrained`` names them, the adapter
name removed: ``base_model.model.<module path>.lora_A.weight`` for tuner methods, ``prompt_embeddings`` for prompt
learning). Writing these two files needs neither peft nor the base model, so exporting does not depend on peft.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import AdalinkError
from ..io import write_atomic
from ..methods.base import MethodConfig

__all__ = ["CONFIG_NAME", "TASK_FILE", "WEIGHTS_NAME", "AdaptedModel", "ExportError", "PeftAdapter", "tuner_key"]

CONFIG_NAME = "adapter_config.json"  # peft's names (peft.utils.constants)
WEIGHTS_NAME = "adapter_model.safetensors"
TASK_FILE = "adalink_task.json"  # beside the adapter: task, labels, prompt template, provenance


class ExportError(AdalinkError, ValueError):
    """The adapter cannot be written in peft's format with the same outputs; the message says what can be done."""


class AdaptedModel(Protocol):
    """What the exporter reads from an :class:`adalink.PeftModel` (a protocol, so that ``adalink.peft_model`` can
    delegate ``save_pretrained(format="peft")`` here without an import circle)."""

    base_model: nn.Module
    peft_config: MethodConfig

    @property
    def adapter_modules(self) -> nn.Module: ...

    @property
    def task_names(self) -> list[str]: ...


@dataclass
class PeftAdapter:
    """``adapter_config.json`` and ``adapter_model.safetensors`` of one peft adapter."""

    config: dict[str, Any]  # the PeftConfig fields (peft_type, task_type, target_modules, ...)
    tensors: dict[str, torch.Tensor]  # peft's key names, as in its saved files
    files: dict[str, str] = field(default_factory=dict)  # further text files written beside them (name -> text)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the adapter into ``directory`` (created if needed); each file is replaced atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().to("cpu").contiguous().clone() for name, t in self.tensors.items()}
        write_atomic(directory / WEIGHTS_NAME, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
        for name, text in {CONFIG_NAME: json.dumps(self.config, indent=2, sort_keys=True), **self.files}.items():
            write_atomic(directory / name, _text_writer(text))
        return directory


def tuner_key(module_path: str, tensor: str) -> str:
    """peft's saved name of a tuner tensor (LoRA, IA3, LoKr, LN tuning) of the module at ``module_path``."""
    return f"base_model.model.{module_path}.{tensor}"


def _text_writer(text: str) -> Callable[[str], None]:
    def write(path: str) -> None:
        Path(path).write_text(text, encoding="utf-8")

    return write
