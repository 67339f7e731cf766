"""A fingerprint of the frozen base model, saved with every adapter so it never loads onto the wrong base.

It records the architecture, the input-embedding shape and a SHA-256 of the input-embedding weights and of every
module the adapter touches (in float32, so a bf16 copy of the same fp32 base is detected as different).

A base that adalink itself casts or quantizes while loading (:mod:`adalink.models.precision`) keeps the
fingerprint of the float32 weights it was made from: :func:`float_fingerprints` hashes them before the conversion and
:func:`keep_float_fingerprints` binds those hashes to the converted parameters. So an adapter trained on a bfloat16 or
int8 copy of a base loads onto the float32 base and the other way round, while a base converted by other means (or
whose parameters were replaced since, e.g. by a merge) is hashed as it is and refused as a different base.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence, Set
from typing import Any

import torch
from torch import nn

from .errors import AdalinkError

__all__ = [
    "FingerprintMismatchError",
    "base_fingerprint",
    "check_fingerprint",
    "check_same_kind_of_base",
    "float_fingerprints",
    "keep_float_fingerprints",
]

_KEPT = "_adalink_float_fingerprints"  # attribute of a converted base: module -> (entry, its parameters then)


class FingerprintMismatchError(AdalinkError, ValueError):
    """The adapter was trained on a different base model (or a different modality layout)."""


def _as_float32(tensor: torch.Tensor) -> torch.Tensor:
    if type(tensor) not in (torch.Tensor, nn.Parameter) and hasattr(tensor, "dequantize"):
        tensor = tensor.dequantize()  # a quantized tensor subclass (torchao) that was not converted by adalink
    return tensor.detach().to("cpu", torch.float32).contiguous()


def _sha256(tensors: Sequence[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(_as_float32(tensor).numpy().tobytes())
    return digest.hexdigest()


def base_fingerprint(
    model: nn.Module, touched: dict[str, nn.Module], exclude: Set[int] = frozenset()
) -> dict[str, Any]:
    """``touched``: dotted path -> every base module the adapter reads or changes; parameters whose ``id`` is in
    ``exclude`` (the adapter's own, e.g. inside a parametrisation) are left out."""
    embedding = model.get_input_embeddings()
    kept = _kept(model)
    fingerprint = {
        **_kind_of_base(model),
        # None where the method trains the table itself (full tuning): only its shape can identify the base
        "embedding_sha256": None if id(embedding.weight) in exclude else _embedding_sha256(embedding, kept),
        "modules": {path: _module_fingerprint(module, kept, exclude) for path, module in touched.items()},
    }
    if kept is not None:
        fingerprint["loaded_as"] = kept["loaded_as"]  # information only: never compared
    return fingerprint


def _kind_of_base(model: nn.Module) -> dict[str, Any]:
    """The fingerprint fields read without hashing: architecture, model type and input-embedding shape."""
    embedding = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    return {
        "architecture": type(model).__name__,
        "model_type": getattr(getattr(model, "config", None), "model_type", None),
        "embedding_shape": list(embedding.weight.shape) if embedding is not None else None,
    }


def _embedding_sha256(embedding: nn.Module, kept: dict[str, Any] | None) -> str:
    params = list(embedding.parameters())
    if len(params) == 1 and params[0] is embedding.weight:  # a plain table: its module entry hashes just the weight
        return _module_fingerprint(embedding, kept)["sha256"]
    weight = embedding.weight
    assert isinstance(weight, torch.Tensor)
    return _sha256([weight])


def _module_fingerprint(module: nn.Module, kept: dict[str, Any] | None, exclude: Set[int] = frozenset()) -> dict:
    frozen = [p for p in module.parameters() if id(p) not in exclude]
    if kept is not None and module in kept["modules"]:
        entry, then = kept["modules"][module]
        if _same(then, frozen):
            return dict(entry)  # the same parameter objects as when converted: the float weights' own entry
        if not _same(then, list(module.parameters())):
            del kept["modules"][module]  # its weights were replaced (e.g. merged): forget, and free, the old ones
    name = type(module).__name__.removeprefix("Parametrized")  # torch.nn.utils.parametrize renames the class
    return {"type": name, "shapes": [list(p.shape) for p in frozen], "sha256": _sha256(frozen)}


def _same(these: Sequence[torch.Tensor], those: Sequence[torch.Tensor]) -> bool:
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def float_fingerprints(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The fingerprint entry of every module that holds parameters and has no child that does (linear layers,
    embeddings, norms), by dotted path, from ``model``'s weights as they are now (float, before a conversion).

    Each parameter is hashed once. Modules with children (e.g. a whole FFN block) are not recorded: an adapter that
    touches one is fingerprinted by the converted weights (so it moves only between bases converted alike).
    """
    entries = {}
    for path, module in model.named_modules():
        own = list(module.parameters(recurse=False))
        if own and len(own) == len(list(module.parameters())):
            entries[path] = _module_fingerprint(module, None)
    return entries


def keep_float_fingerprints(model: nn.Module, entries: dict[str, dict[str, Any]], *, loaded_as: dict) -> None:
    """Fingerprint ``model`` (just cast or quantized) by ``entries`` (:func:`float_fingerprints` of its float
    weights) for as long as each module still holds the parameter objects it holds now. ``loaded_as`` (dtype,
    quantization) is saved with adapters for information."""
    modules: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    for path, entry in entries.items():
        module = model.get_submodule(path)
        # strong references: a weak one would stop torch from moving a quantized tensor subclass (swap_tensors)
        modules[module] = (entry, list(module.parameters()))
    object.__setattr__(model, _KEPT, {"modules": modules, "loaded_as": dict(loaded_as)})


def _kept(model: nn.Module) -> dict[str, Any] | None:
    return model.__dict__.get(_KEPT)


def check_same_kind_of_base(saved: dict[str, Any], model: nn.Module, adapter_dir: str) -> None:
    """Before anything is attached: refuse a base of another architecture, model type or embedding shape than the
    adapter's (the hashes are compared by :func:`check_fingerprint` once the adapter is attached)."""
    actual = _kind_of_base(model)
    if all(saved.get(key, value) == value for key, value in actual.items()):
        return

    def describe(base: dict[str, Any]) -> str:
        return f"{base.get('architecture')} ({base.get('model_type')}, embedding {base.get('embedding_shape')})"

    raise FingerprintMismatchError(
        f"{adapter_dir} was trained on a different base model: {describe(saved)}; this model is {describe(actual)}. "
        "Load it onto the base it was trained on, or pass ignore_fingerprint=True (--ignore-fingerprint) to override."
    )


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
