"""Training memory measured again: one training run per (model, task, method, config) of a bench, nothing else.

Runs made before the worker kept the training peak apart (``memory_scope``) recorded the peak of the whole run, test
evaluation and saves included. Memory does not depend on the seed or the rate, so one run of the same spec (same
model, task, method config, batch, micro-batch, input length and steps) in a fresh worker process, its peak read
over the optimiser steps alone (:class:`adalink.process_memory.StepPeak`), stands in for every run of that cell: it
trains, but skips the validation score, the inference timing and the forgetting probe. Fewer steps are cheaper but
read low: the peak keeps growing over the steps (on MiniLM tweets, full tuning: 820 MiB at step 30, 855 at 100, 863
at 200). Each measurement is a file ``<out>/train-memory/<name>.json``; the report reads it for runs that lack their
own.

Protocol 2 (bd0683d, ``memory_protocol`` in the file): a batch routed to one task by a task-id tensor takes the
plain path; before, every example gathered its own copy of the adapter's weights. That changed the training step of
the methods that gather large per-task weights (``benchmarks/results/perf/routing_fix_ab.jsonl``, step peak: MAM 731
-> 217 MiB, prefix tuning 474 -> 170, UniPELT 582 -> 282, parallel 213 -> 169; the other 14 methods within 15 MiB),
so their earlier peaks are not shown and are measured again; the other methods' earlier peaks stand (cells measured
both ways: 0.6-5.6 % apart, as two measurements of one protocol).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from .grid import BenchRun

__all__ = [
    "MEMORY_PROTOCOL",
    "MEMORY_SCOPE",
    "ROUTING_SENSITIVE",
    "TRAINING_ONLY",
    "current_training_memory",
    "load_measurements",
    "measurement_name",
    "measurement_path",
    "measurement_spec",
    "needs_measurement",
]

TRAINING_ONLY = "optimiser steps"  # a run's ``memory_scope`` when its train_memory_bytes covers the steps alone
MEMORY_PROTOCOL = 2  # see the module's docstring; files without ``memory_protocol`` are protocol 1
ROUTING_SENSITIVE = frozenset({"mam", "parallel", "prefix_tuning", "unipelt"})  # whose peaks protocol 2 changed
MEMORY_SCOPE = {"memory_scope": TRAINING_ONLY, "memory_protocol": MEMORY_PROTOCOL}  # what the worker records
MEMORY_DIR = "train-memory"


def measurement_spec(run_spec: dict[str, Any], steps: int | None = None) -> BenchRun:
    """The run that measures ``run_spec``'s training memory: the same spec (at ``steps`` optimiser steps where given),
    with no validation score and a token test score (16 examples: the peak is read before it)."""
    run = BenchRun(**run_spec)
    return replace(run, max_steps=run.max_steps if steps is None else steps, validate=False, max_eval=16)


def measurement_name(spec: dict[str, Any] | BenchRun) -> str | None:
    """The cell a measurement stands for: profile, model, task, method and config (None for a run that recorded no
    config: its recipe cannot be trained again)."""
    run = spec if isinstance(spec, BenchRun) else BenchRun(**spec)
    if run.method_config is None:
        return None
    return f"{run.profile}__{run.model_slug}__{run.task}__{run.method}__cfg{run.config_tag}"


def measurement_path(out: Path, name: str) -> Path:
    return Path(out) / MEMORY_DIR / f"{name}.json"


def current_training_memory(document: dict[str, Any]) -> bool:
    """Whether ``document`` (a run or a measurement) holds a training-only peak that today's protocol accepts."""
    if document.get("memory_scope") != TRAINING_ONLY:
        return False
    method = document.get("spec", {}).get("method")
    return document.get("memory_protocol", 1) >= MEMORY_PROTOCOL or method not in ROUTING_SENSITIVE


def needs_measurement(document: dict[str, Any]) -> bool:
    """An ok run whose own file does not hold its training-only memory under today's protocol."""
    return document.get("status") == "ok" and not current_training_memory(document)


def load_measurements(out: Path) -> dict[str, dict[str, Any]]:
    """name -> the ok measurement documents under ``<out>/train-memory/``, measured under today's protocol."""
    found = {}
    for path in sorted((Path(out) / MEMORY_DIR).glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("status") == "ok" and current_training_memory(document):
            found[path.stem] = document
    return found
