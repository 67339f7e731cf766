"""The headline bench's training memory beside ``benchmarks/train_cost.py``'s, both relative to full tuning.

The two measure the same thing differently: the bench reads the peak of 200 optimiser steps of ``adalink train``
(batches of up to 64 tokens, padded to each batch's longest, so the peak grows as longer batches come), one fresh
process per run; ``train_cost.py`` trains a few steps of one fixed batch per contender in a fresh process, outside the
harness. This section puts their ratios to full tuning side by side, for the methods both ran at today's defaults,
and where ``benchmarks/memory_gap.py`` ran, what it measured of the difference (the same steps both ways, with
glibc's default allocator and with its mmap threshold fixed).
"""

from __future__ import annotations

import statistics
from typing import Any

from .aggregate import MethodRow
from .tables import table

__all__ = ["memory_agreement_parts", "memory_gap_parts"]

HEADLINE = "standard"


def memory_agreement_parts(rows: list[MethodRow], train_cost: dict[str, Any]) -> list[str]:
    """A table (method, bench, train_cost.py, difference, in points of full tuning = 100) and one sentence that
    states the largest difference; nothing where either side lacks full tuning or the methods."""
    script = {r["contender"]: r.get("memory_vs_full") for r in train_cost.get("rows", [])}
    bench = {r.method: r.relative.get("memory_bytes") for r in rows if r.profile == HEADLINE}
    both = sorted(m for m in bench if m != "full" and bench[m] is not None and script.get(m) is not None)
    if not both:
        return []
    pairs = [(m, bench[m], 100 * script[m]) for m in both]
    lines = [[m, f"{b:.1f}", f"{t:.1f}", f"{b - t:+.1f}"] for m, b, t in pairs]
    widest = max(pairs, key=lambda p: abs(p[1] - p[2]))
    missing = sorted(m for m in bench if m != "full" and "(" not in m and m not in both)
    return [
        "### Training memory: the bench beside `benchmarks/train_cost.py` (full tuning = 100)",
        "",
        f"The bench's training-only memory (profile `{HEADLINE}`, mean over tasks: 200 steps of batch 16 through "
        f"`adalink train`) beside `train_cost.py`'s ({train_cost.get('batch')} x {train_cost.get('length')} tokens, "
        f"{_steps(train_cost)} of one fixed batch outside the harness), each relative to its own full tuning. "
        "The largest "
        f"difference is {widest[0]}'s, {widest[1] - widest[2]:+.1f} points; the median is "
        f"{statistics.median(b - t for _, b, t in pairs):+.1f}."
        + (f" Not in both: {', '.join(missing)}." if missing else ""),
        "",
        table(["method", "bench", "train_cost.py", "bench - train_cost.py"], lines),
        "",
    ]


def _steps(train_cost: dict[str, Any]) -> str:
    steps = train_cost.get("memory_steps")
    return f"{steps} steps" if steps else "a few steps"


def _task_label(row: dict[str, Any], tasks: set[str]) -> str:
    """`` (bbc)`` where the file's harness runs cover several tasks (files before ``--tasks`` ran on tweets alone)."""
    return f" ({row.get('task', 'tweets')})" if len(tasks) > 1 else ""


def memory_gap_parts(gap: dict[str, Any]) -> list[str]:
    """One sentence per allocator setting: by how much the harness's training memory exceeds the bare loop's."""
    by_allocator: dict[str, list[dict[str, Any]]] = {}
    for row in gap.get("rows", []):
        by_allocator.setdefault(row["allocator"], []).append(row)
    if not by_allocator:
        return []
    tasks = {row.get("task", "tweets") for row in gap["rows"]}
    sentences = []
    for allocator, rows in by_allocator.items():
        each = ", ".join(
            f"{r['method']}{_task_label(r, tasks)} {r['harness_mib']:.0f} vs {r['bare_loop_mib']:.0f} "
            f"({r['difference_mib']:+.0f})"
            for r in rows
        )
        sentences.append(f"with {allocator}: {each} MiB")
    return [
        f"`benchmarks/memory_gap.py` trained {gap.get('steps')} steps of batch {gap.get('batch')} x "
        f"{gap.get('length')} both ways in fresh processes (harness vs bare loop, training memory): "
        + "; ".join(sentences)
        + ".",
        "",
    ]
