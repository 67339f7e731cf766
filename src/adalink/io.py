"""Safe adapter files: ``adapter_config.json`` + ``adapter_model.safetensors`` (no pickle, nothing executed on load).

Each file is written to a temporary name, flushed to disk and renamed into place, so a crash leaves either the old
file or the new one, never a half-written one. The weights are written first and the config last; the config
records the weights' SHA-256, so a pair from two different saves (a crash between the two renames) is refused.
:func:`write_json_atomic` writes every other JSON document of adalink (run files, metrics, bench and experiment
results) the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "WEIGHTS_NAME",
    "AdapterFileError",
    "file_sha256",
    "fsync_path",
    "read_adapter",
    "write_adapter",
    "write_json_atomic",
]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "adalink"
FORMAT_VERSION = 1


class AdapterFileError(ValueError):
    """An adapter directory is missing, truncated, corrupt or inconsistent."""


def write_adapter(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Atomically write an adapter directory; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    weights_path = directory / WEIGHTS_NAME
    _atomic_write(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **metadata,
        "weights_sha256": file_sha256(weights_path),
    }
    text = json.dumps(document, indent=2, sort_keys=True)
    _atomic_write(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    fsync_path(directory)
    return directory


def read_adapter(directory: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and verify an adapter directory written by :func:`write_adapter`."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise AdapterFileError(f"Not an adalink adapter directory: {path} is missing.")
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterFileError(f"{config_path} is corrupt or truncated (not valid JSON: {err}).") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise AdapterFileError(f'{config_path} is not an adalink adapter config (expected "format": "{FORMAT}").')
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise AdapterFileError(
            f"{config_path} has format_version {document['format_version']}; this adalink reads up to "
            f"{FORMAT_VERSION}: upgrade adalink."
        )
    if file_sha256(weights_path) != document.get("weights_sha256"):
        raise AdapterFileError(
            f"{weights_path} does not match {CONFIG_NAME} (SHA-256 differs): the file is truncated or corrupt, "
            "or the two files come from different saves."
        )
    try:
        tensors = load_file(weights_path)
    except (SafetensorError, OSError) as err:
        raise AdapterFileError(f"{weights_path} is corrupt: {err}") from None
    return document, tensors


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(
    path: str | os.PathLike, document: Any, *, sort_keys: bool = False, final_newline: bool = False
) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically (temporary file, fsync, rename): a reader, or a
    resumed run, sees the old file or the new one, never half of one. Missing parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=sort_keys) + ("\n" if final_newline else "")

    def write(tmp: str) -> None:
        Path(tmp).unlink()  # a new file gets the usual permissions (umask); mkstemp's own is private (0600)
        Path(tmp).write_text(text, encoding="utf-8")

    _atomic_write(path, write)


def fsync_path(path: Path) -> None:
    """Flush a file or a directory entry to disk; a no-op where the platform cannot open directories."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        descriptor = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
