"""A fingerprint of the frozen base model, saved with every adapter so it never loads onto the wrong base.

It records the architecture, the input-embedding shape and a SHA-256 of the input-embedding weights and of every
module the adapter touches (in float32, so a bf16 copy of the same fp32 base is detected as different).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence, Set
from typing import Any

import torch
from torch import nn

__all__ = ["FingerprintMismatchError", "base_fingerprint", "check_fingerprint"]


class FingerprintMismatchError(ValueError):
    """The adapter was trained on a different base model (or a different modality layout)."""


def _sha256(tensors: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def base_fingerprint(
    model: nn.Module, touched: dict[str, nn.Module], exclude: Set[int] = frozenset()
) -> dict[str, Any]:
    """``touched``: dotted path -> every base module the adapter reads or changes; parameters whose ``id`` is in
    ``exclude`` (the adapter's own, e.g. inside a parametrisation) are left out."""
    embedding = model.get_input_embeddings()
    config = getattr(model, "config", None)
    return {
        "architecture": type(model).__name__,
        "model_type": getattr(config, "model_type", None),
        "embedding_shape": list(embedding.weight.shape),
        # None where the method trains the table itself (full tuning): only its shape can identify the base
        "embedding_sha256": None if id(embedding.weight) in exclude else _sha256([embedding.weight]),
        "modules": {path: _module_fingerprint(module, exclude) for path, module in touched.items()},
    }


def _module_fingerprint(module: nn.Module, exclude: Set[int]) -> dict[str, Any]:
    frozen = [p for p in module.parameters() if id(p) not in exclude]
    name = type(module).__name__.removeprefix("Parametrized")  # torch.nn.utils.parametrize renames the class
    return {"type": name, "shapes": [list(p.shape) for p in frozen], "sha256": _sha256(frozen)}


def check_fingerprint(saved: dict[str, Any], actual: dict[str, Any], adapter_dir: str) -> None:
    """Raise :class:`FingerprintMismatchError` naming every field that differs."""
    differences = [
        f"{key}: adapter has {saved.get(key)!r}, model has {actual.get(key)!r}"
        for key in ("architecture", "model_type", "embedding_shape", "embedding_sha256")
        if saved.get(key) != actual.get(key)
    ]
    saved_modules, actual_modules = saved.get("modules", {}), actual.get("modules", {})
    for path in sorted(set(saved_modules) | set(actual_modules)):
        if saved_modules.get(path) != actual_modules.get(path):
            differences.append(
                f"module {path!r}: adapter has {saved_modules.get(path)}, model has {actual_modules.get(path)}"
            )
    if differences:
        raise FingerprintMismatchError(
            f"The adapter in {adapter_dir} was saved for a different base model:\n  - "
            + "\n  - ".join(differences)
            + "\nLoad it onto the base model it was trained on, "
            "or pass ignore_fingerprint=True to load it deliberately."
        )
