"""Aggregate run results as the survey does (§11.2-11.3): best learning rate, mean ± std over seeds, then the
mean over tasks with the Euclidean mean of per-task variances, and efficiency relative to full tuning = 100."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import scored_examples
from ..stats import Summary, sampling_variance, summarize
from .grid import best_lr, default_method_config
from .train_memory import current_training_memory, load_measurements, measurement_name, needs_measurement

__all__ = ["COST_KEYS", "Cell", "MethodRow", "aggregate", "load_results"]


def load_results(out: Path) -> list[dict[str, Any]]:
    """Every run document ``<out>/*.json`` (ok and failed), in file-name order; other JSON files there (the
    serving load test's) are not runs and are left out. A run that did not record its training-only memory gets
    its cell's measurement from ``<out>/train-memory/`` (``measured_train_memory_bytes``), where there is one."""
    measured = load_measurements(out)
    documents = []
    for path in sorted(Path(out).glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a file being replaced right now; the next report picks it up
        if isinstance(document, dict) and "spec_key" in document and "spec" in document:
            documents.append(document)
            name = measurement_name(document["spec"]) if needs_measurement(document) else None
            if name in measured:
                document["measured_train_memory_bytes"] = _memory(measured[name])
    return documents


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _all_tasks_mean(cells: list[Cell], key: str) -> float | None:
    """The mean over tasks of the cells' means of ``key`` (one of :data:`COST_KEYS`); None unless every task has
    one (a row mean over some tasks would be compared with full tuning's over others)."""
    means = [m for m in (cell.stat(key) for cell in cells) if m is not None]
    return sum(means) / len(means) if means and len(means) == len(cells) else None


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _memory(run: dict[str, Any]) -> float | None:
    """Training memory over the optimiser steps alone: GPU peak allocated where a GPU trained, else peak RSS above
    the pre-model RSS; from the run itself, or from a short run of the same spec (:mod:`.train_memory`). None for a
    run that recorded only its whole run's peak (test evaluation and saving inside), or a peak under an earlier
    measuring protocol, and was not measured again."""
    if current_training_memory(run):
        return run.get("gpu_peak_bytes") or run.get("train_memory_bytes")
    return run.get("measured_train_memory_bytes")


# the costs of a run that the Pareto plots weigh against the score; the same keys as MethodRow.stats
COST_KEYS: dict[str, Callable[[dict[str, Any]], float | None]] = {
    "trainable_params": lambda run: run["metrics"]["trainable_params"],
    "memory_bytes": _memory,
    "train_tps": lambda run: run["metrics"]["train_tokens_per_second"],
}


@dataclass
class Cell:
    """One (profile, model, task, method) at its chosen learning rate, over seeds."""

    profile: str
    model: str
    task: str
    method: str
    lr: float
    runs: list[dict[str, Any]]
    sweep: dict[float, float | None] = field(default_factory=dict)  # lr -> validation score of the first seed
    base_method: str = ""  # the registered method; ``method`` adds the config where it is not today's default

    def __post_init__(self) -> None:
        self.base_method = self.base_method or self.method

    def values(self, key: str) -> list[float]:
        return [r[key] for r in self.runs if r.get(key) is not None]

    @property
    def scores(self) -> list[float]:
        return self.values("score")

    @property
    def score(self) -> float:
        return statistics.mean(self.scores)

    @property
    def score_std(self) -> float:
        return _std(self.scores)

    @property
    def summary(self) -> Summary:
        """Mean ± std over seeds with the test set's sampling variance, in the form the significance rule of
        ``adalink experiment`` reads (:mod:`adalink.stats`)."""
        runs = [r for r in self.runs if r.get("score") is not None]
        examples = {self.task: scored_examples(self.task, runs[0]["spec"]["max_eval"])} if runs else {}
        return summarize(self.scores, sampling_variance([{self.task: r["score"]} for r in runs], examples))

    @property
    def majority_baseline(self) -> float | None:
        """Accuracy of always answering the most frequent class on the scored test examples."""
        return (self.runs[0]["metrics"].get("majority_baseline") or {}).get(self.task)

    def stat(self, key: str) -> float | None:
        """Mean over seeds of one of :data:`COST_KEYS`."""
        return _mean(COST_KEYS[key](r) for r in self.runs)


@dataclass
class MethodRow:
    """One (profile, model, method) over tasks: the survey's Table 4/5 row."""

    profile: str
    model: str
    method: str
    cells: list[Cell]
    # see aggregate(): numbers (None where no run measured one), counts, 'forgetting_kind' (str | None), 'gpu' (bool)
    stats: dict[str, Any] = field(default_factory=dict)
    relative: dict[str, float | None] = field(default_factory=dict)  # efficiency vs full tuning = 100


def variant_label(method: str, config: dict[str, Any] | None) -> str:
    """``method`` where ``config`` is its default today, else ``method (field value, ...)`` naming each field that
    differs, or ``method (config unrecorded)`` for files from before runs recorded it: runs of other configs are rows
    of their own, never pooled with the default's. A field the run's config lacks (added to the method later) does
    not count."""
    if config is None:
        return f"{method} (config unrecorded)"
    today = default_method_config(method)
    changed = [f"{key} {_value(config[key])}" for key in sorted(config) if today.get(key, object()) != config[key]]
    return f"{method} ({', '.join(changed)})" if changed else method


def _value(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def aggregate(documents: list[dict[str, Any]]) -> tuple[list[Cell], list[MethodRow]]:
    ok = [d for d in documents if d.get("status") == "ok"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for d in ok:
        s = d["spec"]
        groups[(s["profile"], s["model"], s["task"], variant_label(s["method"], s.get("method_config")))].append(d)
    cells = []
    for (profile, model, task, method), runs in sorted(groups.items()):
        first_seed = min(r["spec"]["seed"] for r in runs)
        sweep_runs = [r for r in runs if r["spec"]["seed"] == first_seed]
        lr = best_lr(sweep_runs)
        assert lr is not None  # sweep_runs are ok runs, at least one (the first seed's)
        chosen = [r for r in runs if r["spec"]["lr"] == lr]
        for r in chosen:
            r.setdefault("memory_bytes", _memory(r))
            r.setdefault("train_tokens_per_second", r["metrics"]["train_tokens_per_second"])
            r.setdefault("forgetting_value", (r.get("forgetting") or {}).get("value"))
        sweep = {r["spec"]["lr"]: r.get("validation_score") for r in sweep_runs}
        cells.append(Cell(profile, model, task, method, lr, chosen, sweep, runs[0]["spec"]["method"]))

    rows: dict[tuple, MethodRow] = {}
    for cell in cells:
        key = (cell.profile, cell.model, cell.method)
        rows.setdefault(key, MethodRow(cell.profile, cell.model, cell.method, []))
        rows[key].cells.append(cell)
    for row in rows.values():
        runs = [r for c in row.cells for r in c.runs]
        variances = [c.score_std**2 for c in row.cells]
        metrics = [r["metrics"] for r in runs]
        total = _mean(m["total_params"] for m in metrics)
        trainable = _mean(m["trainable_params"] for m in metrics)
        merged = [r.get("infer_merged_tokens_per_second") for r in runs]
        if row.method == "full":  # a plain model: merged and unmerged are the same thing
            merged = [r.get("infer_tokens_per_second") for r in runs]
        row.stats = {
            "score": statistics.mean(c.score for c in row.cells),
            "score_std": math.sqrt(sum(variances) / len(variances)),
            "seeds": min(len(c.runs) for c in row.cells),
            "tasks": len(row.cells),
            "trainable_params": trainable,
            "head_params": _mean(m["head_params"] for m in metrics),
            "total_params": total,
            "trainable_pct": 100 * trainable / total if total else None,
            "adapter_bytes": _mean(r.get("adapter_bytes") for r in runs),
            "memory_bytes": _all_tasks_mean(row.cells, "memory_bytes"),
            "peak_rss_bytes": _mean(r.get("peak_rss_bytes") for r in runs),
            "train_tps": _mean(r["train_tokens_per_second"] for r in runs),
            "infer_tps": _mean(r.get("infer_tokens_per_second") for r in runs),
            "infer_merged_tps": _mean(merged),
            "forgetting": _mean(r["forgetting_value"] for r in runs),
            "forgetting_kind": next((r["forgetting"]["kind"] for r in runs if r.get("forgetting")), None),
            "gpu": any(r.get("gpu_peak_bytes") for r in runs),
        }
    for (profile, model, _), row in rows.items():
        full = rows.get((profile, model, "full"))
        for name in ("memory_bytes", "train_tps", "infer_tps", "infer_merged_tps", "adapter_bytes"):
            mine = row.stats.get(name)
            ref = full.stats.get("infer_tps" if name == "infer_merged_tps" else name) if full else None
            row.relative[name] = 100 * mine / ref if mine is not None and ref else None
    return cells, sorted(rows.values(), key=lambda r: (r.profile, r.model, r.method != "full", r.method))
