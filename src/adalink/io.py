"""Safe adapter files: ``adapter_config.json`` + ``adapter_model.safetensors`` (no pickle, nothing executed on load).

Each file is written to a temporary name, flushed to disk and renamed into place, so a crash leaves either the old
file or the new one, never a half-written one. The weights are written first and the config last; the config
records the weights' SHA-256, so a pair from two different saves (a crash between the two renames) is refused, and
its own (``config_sha256``, over the rest of the document), so a changed or corrupt config is refused rather than
read as different settings. :func:`write_json_atomic` writes every other JSON document of adalink (run files,
metrics, bench and experiment results) the same way.

Every file written here gets the permissions an ordinary ``open(path, "w")`` would give it (``0o666`` less the
process's umask, as ``transformers``' ``save_pretrained`` does): the temporary file is created by the kernel with
mode ``0o666``, which applies the umask itself, instead of ``tempfile.mkstemp``'s owner-only ``0o600``; a writer
that makes its own file (``safetensors`` writes ``0o600``) has its mode set back to the one the kernel gave. Nothing
reads or sets the umask (``os.umask`` can only be read by setting it, which is not thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import AdalinkError

__all__ = [
    "CONFIG_NAME",
    "FORMAT",
    "WEIGHTS_NAME",
    "AdapterFileError",
    "file_sha256",
    "fsync_path",
    "make_temp_dir",
    "read_adapter",
    "write_adapter",
    "write_atomic",
    "write_json_atomic",
]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT = "adalink"
FORMAT_VERSION = 1


class AdapterFileError(AdalinkError, ValueError):
    """An adapter directory is missing, truncated, corrupt or inconsistent."""


def write_adapter(directory: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Atomically write an adapter directory; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    weights_path = directory / WEIGHTS_NAME
    write_atomic(weights_path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))
    metadata = {k: v for k, v in metadata.items() if k != _SELF_SHA}  # a re-saved document gets a new one
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        **metadata,
        "weights_sha256": file_sha256(weights_path),
    }
    document[_SELF_SHA] = _document_sha256(document)
    text = json.dumps(document, indent=2, sort_keys=True)
    write_atomic(directory / CONFIG_NAME, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
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
    version = document.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise AdapterFileError(f"{config_path} has format_version {version!r}; expected an integer.")
    if _SELF_SHA in document and document[_SELF_SHA] != _document_sha256(document):  # older files have none
        raise AdapterFileError(
            f"{config_path} was changed after it was saved or is corrupt (its {_SELF_SHA} does not match its "
            "content): save the adapter again rather than editing the file."
        )
    if version > FORMAT_VERSION:
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
    except (SafetensorError, OSError, ValueError) as err:
        raise AdapterFileError(f"{weights_path} is corrupt: {err}") from None
    return document, tensors


_SELF_SHA = "config_sha256"


def _document_sha256(document: dict[str, Any]) -> str:
    """SHA-256 of a document's canonical JSON, leaving out its own checksum field."""
    canonical = json.dumps({k: v for k, v in document.items() if k != _SELF_SHA}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _create_file(directory: Path, prefix: str) -> Path:
    """A new empty file ``directory/prefix<random>.tmp`` created with mode 0o666 (so the umask applies)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        path = directory / f"{prefix}{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(path, flags, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"No free temporary name {prefix}*.tmp in {directory}.")


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new empty directory ``parent/prefix<random>`` with mode 0o777 less the umask (``tempfile.mkdtemp``'s is
    0o700), to be filled and renamed into place."""
    for _ in range(100):
        path = Path(parent) / f"{prefix}{secrets.token_hex(6)}"
        try:
            os.mkdir(path, 0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"No free temporary name {prefix}* in {parent}.")


def write_atomic(path: str | os.PathLike, write: Callable[[str], Any]) -> None:
    """Replace ``path`` atomically: ``write(tmp)`` fills a temporary file next to it (permissions as a plain
    ``open`` would give, see the module docstring), which is flushed to disk and renamed onto ``path``. A crash
    leaves the old file or the new one; the temporary file is removed if ``write`` fails."""
    path = Path(path)
    tmp = _create_file(path.parent, f".{path.name}.")
    mode = stat.S_IMODE(tmp.stat().st_mode)  # 0o666 less the umask, as the kernel made the empty file
    try:
        write(str(tmp))
        if stat.S_IMODE(tmp.stat().st_mode) != mode:  # a writer that makes its own file (safetensors: 0o600)
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(
    path: str | os.PathLike, document: Any, *, sort_keys: bool = False, final_newline: bool = False
) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically (temporary file, fsync, rename): a reader, or a
    resumed run, sees the old file or the new one, never half of one. Missing parent directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2, sort_keys=sort_keys) + ("\n" if final_newline else "")
    write_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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
