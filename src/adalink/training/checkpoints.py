"""Periodic, atomic training checkpoints that a killed run resumes from.

A checkpoint is a directory ``checkpoints/step-00000040/`` holding the trainable tensors (safetensors), the
optimiser and scheduler state and every process's RNG state (``torch.save``, read back with ``weights_only=True``:
plain tensors and numbers, nothing executed), ``state.json``, and with ``--eval-every`` the best weights so far
(``best.safetensors``, :func:`read_best`). It is written under a temporary name and
renamed into place, then ``checkpoints/latest`` is atomically pointed at it; older ones beyond ``keep`` go after.
A process killed at any moment therefore leaves ``latest`` naming a complete checkpoint (or no ``latest`` at all).

``state.json`` records the SHA-256 of every other file of its checkpoint and of its own content, so a truncated,
corrupt or swapped file is refused with :class:`CheckpointError` instead of resuming from wrong weights. Files and
directories get the permissions the umask gives (:func:`adalink.io.make_temp_dir`), like the run's other outputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import AdalinkError
from ..io import file_sha256, fsync_path, make_temp_dir, write_atomic

__all__ = [
    "CheckpointError",
    "latest_checkpoint",
    "load_trainable",
    "optimizer_state_by_index",
    "optimizer_state_by_name",
    "read_best",
    "read_checkpoint",
    "restore_rng",
    "rng_state",
    "set_rng_state",
    "trainable_tensors",
    "write_checkpoint",
]

LATEST = "latest"
STATE = "state.json"
BEST = "best.safetensors"  # the best weights of --eval-every
_FILES, _SELF = "files_sha256", "state_sha256"  # state.json's checksums: of the other files, of itself
# what torch.load raises on a damaged file (an unreadable zip, a cut pickle, a refused type)
_LOAD_ERRORS = (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError)


class CheckpointError(AdalinkError, RuntimeError):
    """A checkpoint is missing, incomplete or from a different run."""


def write_checkpoint(
    root: Path,
    step: int,
    *,
    trainable: dict[str, torch.Tensor],
    optimizer: dict,
    scheduler: dict,
    rng_states: list[dict[str, Any]],
    state: dict[str, Any],
    keep: int,
    best: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` (``rng_states``: one per process, by rank; ``best``: the best weights so far, if
    any) and point ``latest`` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = make_temp_dir(root, f".{final.name}.")
    try:
        tensors = {k: v.detach().cpu().contiguous() for k, v in trainable.items()}
        write_atomic(tmp / "trainable.safetensors", lambda path: save_file(tensors, path))  # umask's mode, not 0o600
        if best is not None:
            best_tensors = {k: v.detach().cpu().contiguous() for k, v in best.items()}
            write_atomic(tmp / BEST, lambda path: save_file(best_tensors, path))
        torch.save({"optimizer": optimizer, "scheduler": scheduler}, tmp / "optimizer.pt")
        for rank, rng in enumerate(rng_states):
            torch.save(rng, tmp / f"rng-{rank}.pt")
        document = {**state, "step": step, _FILES: {p.name: file_sha256(p) for p in sorted(tmp.iterdir())}}
        (tmp / STATE).write_text(json.dumps({**document, _SELF: _state_sha256(document)}, indent=2))
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        fsync_path(tmp)
        if final.exists():  # a re-run of the same step after a resume (never the one `latest` names): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_atomic(root / LATEST, lambda path: Path(path).write_text(final.name))
    fsync_path(root)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    complete = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):  # temporary directories of killed writers
        shutil.rmtree(stale, ignore_errors=True)
    for stale in root.glob(f".{LATEST}.*.tmp"):  # pointers of killed writers
        stale.unlink(missing_ok=True)


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint ``root/latest`` names, or None when there is none yet."""
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        name = ""
    path = root / name
    if not name.startswith("step-") or os.sep in name or not (path / STATE).is_file():
        raise CheckpointError(
            f"{pointer} points at {name!r}, which is missing or incomplete; the checkpoints there are "
            f"{sorted(p.name for p in root.glob('step-*'))}: point {LATEST} at one of them (its name as the file's "
            "only line) or start afresh without --resume."
        )
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict, dict[str, Any]]:
    """(trainable tensors, optimiser state, scheduler state, state.json) of a checkpoint, verified against the
    checksums its ``state.json`` records.

    Raises:
        CheckpointError: A file is missing, truncated, corrupt or from another checkpoint.
    """
    state = _read_state(path)
    try:
        optim = torch.load(path / "optimizer.pt", weights_only=True)
        tensors = load_file(path / "trainable.safetensors")
        return tensors, optim["optimizer"], optim["scheduler"], state
    except (*_LOAD_ERRORS, KeyError, TypeError, SafetensorError) as err:
        raise CheckpointError(f"{path} is corrupt: {type(err).__name__}: {err}") from None


def read_best(path: Path) -> dict[str, torch.Tensor] | None:
    """The best weights checkpoint ``path`` keeps (``--eval-every``), verified against ``state.json``'s checksum;
    None when it keeps none.

    Raises:
        CheckpointError: The file is missing, truncated, corrupt or from another checkpoint.
    """
    _read_state(path, only=BEST)  # fails if state.json lists the file and it is missing or differs
    if not (path / BEST).is_file():
        return None
    try:
        return load_file(path / BEST)
    except (OSError, SafetensorError) as err:
        raise CheckpointError(f"{path / BEST} is corrupt: {type(err).__name__}: {err}") from None


def _state_sha256(document: dict[str, Any]) -> str:
    canonical = json.dumps({k: v for k, v in document.items() if k != _SELF}, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _read_state(path: Path, only: str | None = None) -> dict[str, Any]:
    """``state.json`` of checkpoint ``path``, once its own checksum and those of the other files (or of file
    ``only`` alone) match."""
    file = path / STATE
    try:
        state = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{file} is unreadable or corrupt ({err}).") from None
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{file} is not a checkpoint state (expected a JSON object with an integer step).")
    if _SELF not in state:  # checkpoints written before the checksums existed
        return state
    files = state.get(_FILES)
    if state[_SELF] != _state_sha256(state) or not isinstance(files, dict):
        raise CheckpointError(f"{file} was changed after it was written or is corrupt (its checksum differs).")
    for name, expected in sorted(files.items()):
        if only is not None and name != only:
            continue
        if not (path / name).is_file() or file_sha256(path / name) != expected:
            raise CheckpointError(
                f"{path / name} is missing, truncated or corrupt, or comes from another checkpoint (its SHA-256 "
                f"differs from the one {STATE} records). Resume from an older checkpoint or start afresh."
            )
    return {k: v for k, v in state.items() if k not in (_FILES, _SELF)}


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copies of ``model``'s trainable parameters, by name: what a checkpoint keeps of the weights."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path | str) -> None:
    """Copy :func:`trainable_tensors` (from ``source``, named in errors) into ``model``.

    Raises:
        CheckpointError: Their names or shapes do not fit ``model``'s trainable parameters.
    """
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    wrong = sorted(n for n in params if n not in tensors or tensors[n].shape != params[n].shape)
    if wrong or set(tensors) - set(params):
        raise CheckpointError(
            f"{source} does not fit this run's trainable parameters (missing or differently shaped: {wrong[:5]}, "
            f"unexpected: {sorted(set(tensors) - set(params))[:5]})."
        )
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])


def optimizer_state_by_name(state: dict, names: list[str]) -> dict:
    """An optimiser state keyed by parameter index (``Optimizer.state_dict()``) re-keyed by parameter name, ``names``
    being the optimiser's parameters in its order (the form a sharded run's checkpoint holds); by name: unchanged."""
    if _keyed_by_name(state):
        return state
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]]
    return {"state": {names[i]: v for i, v in state["state"].items()}, "param_groups": groups}


def optimizer_state_by_index(state: dict, names: list[str]) -> dict:
    """The inverse of :func:`optimizer_state_by_name`: what ``Optimizer.load_state_dict`` reads.

    Raises:
        CheckpointError: A name is not one of ``names``.
    """
    if not _keyed_by_name(state):
        return state
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({n for g in state["param_groups"] for n in g["params"]} - index.keys())
    if unknown:
        raise CheckpointError(f"The checkpoint's optimiser state names parameters this run lacks: {unknown[:5]}.")
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]
    return {"state": {index[n]: v for n, v in state["state"].items()}, "param_groups": groups}


def _keyed_by_name(state: dict) -> bool:
    return any(isinstance(n, str) for g in state.get("param_groups", []) for n in g.get("params", []))


def rng_state() -> dict[str, Any]:
    """This process's random state (dropout masks depend on it)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(path: Path, rank: int) -> None:
    file = path / f"rng-{rank}.pt"
    if not file.is_file():
        raise CheckpointError(f"{file} is missing: was the checkpoint made with a different number of processes?")
    try:
        state = torch.load(file, weights_only=True)
    except _LOAD_ERRORS as err:
        raise CheckpointError(f"{file} is corrupt: {type(err).__name__}: {err}") from None
    set_rng_state(state)


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back a state :func:`rng_state` took."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
