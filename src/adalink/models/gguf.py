"""Packaged GGUF files, de-quantised once into plain float32 ``save_pretrained`` checkpoints.

Shared by the aliases that ship as GGUF (:mod:`.smollm2`, :mod:`.gemma3`): finding an installed package's files
without importing it, the modules transformers needs to read GGUF, and the checked conversion itself.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import RunFailedError
from .errors import MissingModelPackageError

__all__ = ["GGUF_LOADER_MODULES", "convert_gguf", "log", "module_dir", "require_loader_modules"]

# transformers needs both to load a GGUF file (gguf parses it; accelerate is required by from_pretrained(gguf_file=)).
GGUF_LOADER_MODULES: tuple[str, ...] = ("gguf", "accelerate")


def module_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing it (or None when it is not installed)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def require_loader_modules(label: str) -> None:
    """Raise :class:`MissingModelPackageError` (with the pip command) when a module of :data:`GGUF_LOADER_MODULES`
    that converting ``label`` from GGUF needs is not installed."""
    missing = []
    for module in GGUF_LOADER_MODULES:
        try:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
        except (ImportError, ValueError):
            missing.append(module)
    if missing:
        raise MissingModelPackageError(
            f"Converting {label} from GGUF (one time) needs {' and '.join(missing)}, not installed. "
            f"Install with: pip install {' '.join(missing)}",
            name=missing[0],
        )


def log(message: str) -> None:
    print(f"adalink: {message}", file=sys.stderr, flush=True)


def convert_gguf(source: Path, out_dir: Path, *, label: str, probe_text: str) -> None:
    """De-quantise the GGUF file ``source`` into a float32 ``save_pretrained`` checkpoint (model + tokenizer) in
    ``out_dir``, as the model class transformers picks for it.

    The saved checkpoint is reloaded and its logits on ``probe_text`` compared with the GGUF-loaded model's; a
    tokenizer or logits mismatch raises :class:`RunFailedError` naming ``label``, and nothing is published.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    gguf_kwargs: dict[str, Any] = {"gguf_file": source.name, "local_files_only": True}
    log(f"loading {source.name} (dequantising to float32)")
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **gguf_kwargs)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(source.parent), dtype=torch.float32, **gguf_kwargs).eval()
    probe = tokenizer([probe_text], return_tensors="pt")
    with torch.no_grad():
        expected = gguf_model(**probe).logits

    log(f"writing a plain checkpoint to {out_dir}")
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain float32 now; keep no GGUF loader state in config.json
    plain = type(gguf_model)(config)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    del gguf_model
    plain.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    del plain

    log("checking the converted checkpoint against the GGUF model")
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), local_files_only=True).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(str(out_dir), local_files_only=True)
    reprobe = reloaded_tokenizer([probe_text], return_tensors="pt")
    if not torch.equal(reprobe["input_ids"], probe["input_ids"]):
        raise RunFailedError(
            f"{label} conversion check failed: the saved tokenizer encodes differently from the GGUF one."
        )
    with torch.no_grad():
        actual = reloaded(**reprobe).logits
    try:
        torch.testing.assert_close(actual, expected)  # float32 tolerances; in practice the logits are identical
    except AssertionError as error:
        raise RunFailedError(
            f"{label} conversion check failed: logits differ from the GGUF model's.\n{error}"
        ) from None
    log(f"converted in {time.perf_counter() - start:.0f} s")
