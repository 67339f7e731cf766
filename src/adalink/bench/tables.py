"""Markdown pieces of BENCHMARKS.md shared by every profile's section: number formats, the survey's Table 5 layout,
the per-task scores, every run (Appendix B layout), the protocol, the environment and the source of the runs."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from .aggregate import Cell, MethodRow

__all__ = [
    "cells_table",
    "efficiency_table",
    "environment_table",
    "kb",
    "mb",
    "method_label",
    "model_name",
    "num",
    "params",
    "profile_text",
    "rate_text",
    "raw_table",
    "score_text",
    "source_text",
    "table",
    "value_text",
]


def num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def rate_text(lr: float) -> str:
    """A learning rate as the report prints it, with no digit lost: ``6e-03``, ``1.5e-04``."""
    for digits in range(4):
        text = f"{lr:.{digits}e}"
        if float(text) == lr:
            return text
    return f"{lr:.3e}"


def mb(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**20:,.1f}"


def kb(value: float | None) -> str:
    return "—" if value is None else f"{value / 2**10:,.1f}"


def model_name(name: str) -> str:
    return Path(name).name if os.sep in name else name


def method_label(method: str) -> str:
    """AdaLink in bold, so its row is easy to find in every table."""
    return f"**{method}**" if method == "adalink" else method


def params(value: float | None) -> str:
    """Millions of parameters, with more digits below 0.1 M."""
    if value is None:
        return "—"
    return f"{value / 1e6:.4f}" if value < 1e5 else f"{value / 1e6:.2f}"


def score_text(mean: float, std: float, n: int) -> str:
    """Accuracy in points, ``± std`` only where there is more than one seed."""
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if n > 1 else f"{100 * mean:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def value_text(value: Any) -> str:
    """One cell of a generically rendered JSON table."""
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def environment_table(documents: list[dict[str, Any]]) -> str:
    envs = [d["environment"] for d in documents if d.get("environment")]
    if not envs:
        return "_No runs yet._"
    env = envs[-1]
    dates = sorted(d["finished_at"] for d in documents if d.get("finished_at"))
    packages = env.get("packages") or {}
    items = [
        ("CPU", f"{env['cpu']} ({env['cpu_count']} logical CPUs visible)"),
        ("torch threads per run", str(sorted({e["torch_threads"] for e in envs}))),
        ("GPU", env.get("gpu") or "none (CPU only)"),
        ("torch / transformers / Python", f"{env['torch']} / {env['transformers']} / {env['python']}"),
        ("platform", env["platform"]),
        ("runs finished", f"{dates[0]} … {dates[-1]}" if dates else "—"),
    ]
    if packages:
        items.append(("packages (latest run)", ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))))
    return table(["", ""], [[k, v] for k, v in items])


def source_text(documents: list[dict[str, Any]]) -> str:
    """The commits the runs were made from and whether the tree was dirty, with how many runs each."""
    counts: Counter[str] = Counter()
    for d in documents:
        source = (d.get("environment") or {}).get("source")
        if not source or not source.get("commit"):
            counts["not recorded (the run predates provenance)"] += 1
        else:
            tree = "uncommitted changes in the tree" if source.get("dirty") else "clean tree"
            counts[f"commit `{source['commit'][:12]}` ({tree})"] += 1
    return "; ".join(f"{what}: {n} run(s)" for what, n in counts.most_common())


def efficiency_table(rows: list[MethodRow], tasks: list[str]) -> str:
    """The survey's Table 5 layout; a score averaged over fewer than ``tasks`` says which tasks it covers."""
    header = [
        "Model",
        "Method",
        "Score",
        "Trainable params (M)",
        "%",
        "Adapter file (KB)",
        "Memory (MB)",
        "Memory (rel.)",
        "Train tok/s",
        "Train (rel.)",
        "Infer (rel.) unmerged",
        "Infer (rel.) merged",
        "Forgetting",
    ]
    body = []
    for row in rows:
        s, r = row.stats, row.relative
        score = score_text(s["score"], s["score_std"], s["seeds"])
        covered = [c.task for c in row.cells]
        if len(covered) < len(tasks):
            score += f" ({', '.join(covered)} only)"
        body.append(
            [
                model_name(row.model),
                method_label(row.method),
                score,
                params(s["trainable_params"]),
                num(s["trainable_pct"], 3),
                kb(s["adapter_bytes"]),
                mb(s["memory_bytes"]),
                num(r.get("memory_bytes")),
                num(s["train_tps"], 0),
                num(r.get("train_tps")),
                num(r.get("infer_tps")),
                num(r.get("infer_merged_tps")) if s["infer_merged_tps"] is not None else "not mergeable",
                num(s["forgetting"], 4),
            ]
        )
    return table(header, body)


def cells_table(cells: list[Cell]) -> str:
    header = [
        "Model",
        "Method",
        "Task",
        "lr",
        "Seeds",
        "Score (test)",
        "Majority baseline",
        "Validation sweep (lr: score)",
        "Steps",
    ]
    body = []
    for c in cells:
        sweep = ", ".join(f"{lr:g}: {'—' if v is None else f'{100 * v:.2f}'}" for lr, v in sorted(c.sweep.items()))
        body.append(
            [
                model_name(c.model),
                c.method,
                c.task,
                f"{c.lr:g}",
                ",".join(str(r["spec"]["seed"]) for r in c.runs),
                score_text(c.score, c.score_std, len(c.runs)),
                num(c.majority_baseline and 100 * c.majority_baseline, 2),
                sweep if len(c.sweep) > 1 else "(one lr)",
                str(c.runs[0].get("steps")),
            ]
        )
    return table(header, body)


def raw_table(documents: list[dict[str, Any]]) -> str:
    header = ["Model", "Method", "Task", "lr", "Seed", "Score", "Validation", "Train tok/s", "Infer tok/s", "Status"]
    body = []
    for d in sorted(documents, key=lambda d: d.get("run_id", "")):
        s = d["spec"]
        ok = d.get("status") == "ok"
        body.append(
            [
                model_name(s["model"]),
                s["method"],
                s["task"],
                f"{s['lr']:g}",
                str(s["seed"]),
                num(100 * d["score"], 2) if ok else "—",
                num(100 * d["validation_score"], 2) if ok and d.get("validation_score") is not None else "—",
                num(d["metrics"]["train_tokens_per_second"], 0) if ok else "—",
                num(d.get("infer_tokens_per_second"), 0) if ok else "—",
                "ok" if ok else f"error: {str(d.get('error', ''))[:80]}",
            ]
        )
    return table(header, body)


def profile_text(documents: list[dict[str, Any]]) -> str:
    spec = documents[0]["spec"]
    micro = spec["batch_size"] // spec["grad_accum"]
    steps = sorted({d["steps"] for d in documents if d.get("steps")})
    lrs = sorted({d["spec"]["lr"] for d in documents})
    seeds = sorted({d["spec"]["seed"] for d in documents})
    head_lrs = sorted({d["spec"].get("head_lr") or 0 for d in documents})
    rates = ", ".join(f"{lr:g}" if lr else "the run's learning rate" for lr in head_lrs)
    head = f" The new classification head (trained by every method, not counted in its parameters) at {rates}."
    return (
        f"Protocol: batch {spec['batch_size']} per optimiser step (micro-batch {micro}, the same for every method), "
        f"max {spec['max_length']} input tokens, {steps} optimiser steps, evaluation on the first "
        f"{spec['max_eval'] or 'all'} examples per split, AdamW, linear schedule with 10 % warm-up, no weight "
        f"decay. Learning rates used: {', '.join(f'{lr:g}' for lr in lrs)}; seeds: {seeds}.{head}"
    )
