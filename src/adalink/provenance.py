"""What a reader needs to trust and redo a measured result: package versions, the project's commit, the hardware.

Every result file that `adalink bench` and `adalink experiment` write carries :func:`provenance` (issue: "each run
file records package versions, the project's commit and whether the tree was dirty, and the hardware").
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

__all__ = ["PACKAGES", "environment", "provenance", "source_state"]

# The distributions whose versions decide a run's numbers.
PACKAGES = ("adalink", "torch", "transformers", "accelerate", "safetensors", "tokenizers", "peft", "gguf", "numpy")


def environment() -> dict[str, Any]:
    """CPU/GPU model, threads, Python and library versions of this process."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
        # kept at the top level too: reports written before `packages` existed read these two keys
        "torch": torch.__version__,
        "transformers": _versions().get("transformers"),
    }


def source_state() -> dict[str, Any]:
    """The git commit of the adalink source in use and whether its tracked files differ from it (None outside git)."""
    root = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


def provenance() -> dict[str, Any]:
    """Environment, source state and the command line of this process."""
    return {**environment(), "source": source_state(), "argv": list(sys.argv)}


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
