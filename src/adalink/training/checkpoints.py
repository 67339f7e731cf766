"""Periodic, atomic training checkpoints that a killed run resumes from.

A checkpoint is a directory ``checkpoints/step-00000040/`` holding the trainable tensors (safetensors), the
optimiser and scheduler state and every process's RNG state (``torch.save``, read back with ``weights_only=True``:
plain tensors and numbers, nothing executed), and ``state.json``. It is written under a temporary name and
renamed into place, then ``checkpoints/latest`` is atomically pointed at it; older ones beyond ``keep`` go after.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = ["CheckpointError", "latest_checkpoint", "read_checkpoint", "restore_rng", "rng_state", "write_checkpoint"]

LATEST = "latest"


class CheckpointError(RuntimeError):
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
) -> Path:
    """Write checkpoint ``step`` (``rng_states``: one per process, by rank) and point ``latest`` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, tmp / "trainable.safetensors")
        torch.save({"optimizer": optimizer, "scheduler": scheduler}, tmp / "optimizer.pt")
        for rank, rng in enumerate(rng_states):
            torch.save(rng, tmp / f"rng-{rank}.pt")
        (tmp / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
        for path in tmp.iterdir():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
        if final.exists():  # a re-run of the same step after a resume: replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, root / LATEST)
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    complete = sorted(p for p in root.glob("step-*") if p.is_dir())
    for old in complete[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".step-*"):  # temporary directories of killed writers
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise CheckpointError(f"{pointer} points at {path.name}, which is missing or incomplete.")
    return path


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict, dict, dict[str, Any]]:
    state = json.loads((path / "state.json").read_text())
    optim = torch.load(path / "optimizer.pt", weights_only=True)
    return load_file(path / "trainable.safetensors"), optim["optimizer"], optim["scheduler"], state


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
    state = torch.load(file, weights_only=True)
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
