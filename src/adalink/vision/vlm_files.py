"""The files of a TinyVLM directory: names, the ``config.json`` document, weights and their SHA-256 checks.

A directory holds ``config.json`` (this format, not a ``transformers`` config), ``model.safetensors`` (vision
encoder, projector and head), the text model's tokenizer, and ``text_model.safetensors`` only when the text model's
weights were changed. ``config.json`` records the SHA-256 of every weight file and of the text-model weights the
model was trained against; :meth:`TinyVLM.from_pretrained <adalink.vision.TinyVLM.from_pretrained>` checks both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..errors import AdalinkError
from ..io import file_sha256
from .config import TinyVLMConfig

__all__ = [
    "CONFIG_NAME",
    "TEXT_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "TinyVLMFileError",
    "check_vlm_files",
    "read_vlm_config",
    "state_sha256",
    "write_json",
    "write_vlm_config",
    "write_weights",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TEXT_WEIGHTS_NAME = "text_model.safetensors"
FORMAT = "adalink-tiny-vlm"
FORMAT_VERSION = 1


class TinyVLMFileError(AdalinkError, ValueError):
    """A TinyVLM directory is missing, corrupt, or was saved against different text-model weights."""


def state_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names, shapes, dtypes and values), independent of its device."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\n".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_weights(path: Path, state: Mapping[str, torch.Tensor]) -> str:
    """Write ``state`` to the safetensors file ``path``; returns the file's SHA-256."""
    save_file(
        {name: t.detach().to("cpu").contiguous() for name, t in state.items()}, str(path), metadata={"format": "pt"}
    )
    return file_sha256(path)


def write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")


def write_vlm_config(
    directory: Path, *, architecture: str, config: TinyVLMConfig, text_model_sha256: str, files: dict[str, str]
) -> None:
    """Write ``config.json``: the architecture, the text-model weights it was trained against and each file's hash."""
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_type": TinyVLMConfig.model_type,
        "architectures": [architecture],
        "config": config.to_dict(),
        "text_model_sha256": text_model_sha256,  # the packaged weights this model was trained against
        "files_sha256": files,
    }
    write_json(directory / CONFIG_NAME, document)


def read_vlm_config(directory: Path) -> dict[str, Any]:
    """The checked ``config.json`` document of a TinyVLM directory (its ``config`` key builds a :class:`TinyVLMConfig`).

    Raises:
        TinyVLMFileError: If the file is missing, corrupt, not a TinyVLM config or of a newer format version.
    """
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise TinyVLMFileError(f"Not a TinyVLM directory: {path} is missing.")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise TinyVLMFileError(f"{path} is corrupt (not valid JSON: {error}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TinyVLMFileError(f'{path} is not a TinyVLM config (expected "format": "{FORMAT}").')
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise TinyVLMFileError(f"{path} has format_version {document['format_version']}; upgrade adalink.")
    return document


def check_vlm_files(directory: Path, document: Mapping[str, Any]) -> TinyVLMConfig:
    """The architecture in ``document`` (read by :func:`read_vlm_config`), once every file it lists matches its hash.

    Raises:
        TinyVLMFileError: If the architecture is invalid, or a listed file is missing or has another SHA-256.
    """
    try:
        config = TinyVLMConfig.from_dict(document["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise TinyVLMFileError(f"{directory / CONFIG_NAME}: invalid TinyVLM config ({error}).") from None
    for name, digest in (document.get("files_sha256") or {}).items():
        path = directory / name
        if not path.is_file() or file_sha256(path) != digest:
            raise TinyVLMFileError(
                f"{path} is missing or does not match {CONFIG_NAME} (SHA-256 differs): the directory is "
                "truncated, corrupt or mixed from two saves."
            )
    return config
