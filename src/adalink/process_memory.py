"""This process's memory: resident size now, its peak, and the peak of the optimiser steps alone.

On Linux the peak is ``VmHWM`` of ``/proc/self/status`` (not ``getrusage().ru_maxrss``: Linux carries that value
across ``exec``, so a child started by a big parent reports the parent's size), and writing ``5`` to
``/proc/self/clear_refs`` resets it to the current resident size (Linux >= 4.0). :class:`StepPeak` uses the reset to
keep what happens between steps (model loading, validation, checkpoint saves) out of the training peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from pathlib import Path

import torch

__all__ = ["StepPeak", "peak_rss_bytes", "release_free_memory", "reset_peak_rss", "rss_bytes"]


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def rss_bytes() -> int:
    """Resident memory of this process now."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    import psutil

    return int(psutil.Process().memory_info().rss)


def peak_rss_bytes() -> int:
    """Peak resident memory of this process's own address space (``VmHWM``) since it started or was last reset."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current resident size (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def release_free_memory() -> None:
    """Collect garbage and hand the C allocator's free pages back (glibc's ``malloc_trim``; a no-op elsewhere), so
    that a peak measured next starts from what is alive, not from what an earlier phase left behind."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class StepPeak:
    """The peak memory of the optimiser steps alone (forward, backward, update: weights, gradients, optimiser state,
    activations), with model loading, validation and checkpoint saves left out.

    Call :meth:`restart` before the steps and after anything else the loop does between them, :meth:`after_update`
    after each optimiser step. ``rss_bytes`` stays None where this process's peak cannot be reset (then it would
    include what came before). On a GPU, ``gpu_bytes`` is ``torch.cuda.max_memory_allocated`` over the same steps.
    """

    def __init__(self) -> None:
        self.rss_bytes: int | None = None
        self.gpu_bytes: int | None = None
        self._resettable = True

    def restart(self) -> None:
        release_free_memory()
        self._resettable = self._resettable and reset_peak_rss()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def after_update(self) -> None:
        if self._resettable:
            self.rss_bytes = max(self.rss_bytes or 0, peak_rss_bytes())
        if torch.cuda.is_available():
            self.gpu_bytes = max(self.gpu_bytes or 0, torch.cuda.max_memory_allocated())
