"""Fake bench result files: `from bench import _fakes as fakes` (tests/ is on the path).

A fake run has every field the aggregation and the report read, with its spec made by the real plan of the
profile, so its file name, spec key and rates are those `adalink bench` would write.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from adalink.bench.profiles import PROFILES
from adalink.bench.runner import BenchPlan

TOTAL_PARAMS = 22_713_216  # MiniLM's backbone, as full tuning counts it
# method -> (trainable params, training memory bytes, training tokens/s)
COSTS = {
    "adalink": (6_144, 300 * 2**20, 1500.0),
    "lora": (73_728, 700 * 2**20, 1200.0),
    "full": (TOTAL_PARAMS, 650 * 2**20, 500.0),
    "bitfit": (26_112, 400 * 2**20, 1400.0),
    "houlsby": (78_432, 380 * 2**20, 1300.0),
}


def run(
    method: str,
    task: str,
    lr: float,
    seed: int,
    score: float,
    *,
    validation: float | None = None,
    profile: str = "standard",
    status: str = "ok",
    commit: str | None = "0123456789abcdef0123",
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result document; ``validation`` is given for the sweep's runs (seed 0 on the sweep task); ``config``: a
    method config other than the method's defaults."""
    p = PROFILES[profile]
    plan = BenchPlan(p, ["minilm"], [task], [method], list(p.seeds), list(p.lrs))
    spec = plan.spec("minilm", task, method, lr, seed, validation is not None)
    if config is not None:
        spec = replace(spec, method_config=config)
    document = {"spec": spec.to_dict(), "spec_key": spec.key(), "run_id": spec.run_id, "status": status}
    if status != "ok":
        return {**document, "error": "worker exited with code 1"}
    params, memory, tps = COSTS[method]
    return {
        **document,
        "score": score,
        "validation_score": validation,
        "steps": spec.max_steps,
        "metrics": {
            "trainable_params": params,
            "head_params": 770,
            "total_params": TOTAL_PARAMS + 770 + (params if method != "full" else 0),
            "train_tokens_per_second": tps,
            "majority_baseline": {task: 0.691},
        },
        "train_memory_bytes": memory,
        "memory_scope": "optimiser steps",  # as the worker writes it today
        "memory_protocol": 2,
        "peak_rss_bytes": memory + 500 * 2**20,
        "infer_tokens_per_second": 2 * tps,
        "infer_merged_tokens_per_second": None if method == "full" else 2 * tps,
        "adapter_bytes": 4 * params,
        "forgetting": {"kind": "embedding_drift", "value": 0.01},
        "finished_at": "2026-12-02T01:19:40Z",
        "environment": {
            "cpu": "AMD EPYC",
            "cpu_count": 2,
            "torch_threads": 1,
            "gpu": None,
            "python": "3.11.7",
            "platform": "Linux",
            "torch": "2.13.0+cpu",
            "transformers": "5.23.0",
            "packages": {"torch": "2.13.0+cpu"},
            "source": {"commit": commit, "dirty": False} if commit else None,
        },
    }


def sweep_and_seeds(method: str, task: str, validation: dict[float, float], seeds: dict[int, float]) -> list[dict]:
    """The sweep (seed 0 at each rate, ``validation`` rate -> score; the test score is the validation score)
    then ``seeds`` (seed -> test score, seed 0 included) at the best rate."""
    best = max(validation, key=lambda lr: (validation[lr], -lr))
    runs = [run(method, task, lr, 0, seeds[0] if lr == best else v, validation=v) for lr, v in validation.items()]
    return runs + [run(method, task, best, seed, score) for seed, score in seeds.items() if seed != 0]


def write(directory: Path, documents: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for document in documents:
        (directory / f"{document['run_id']}.json").write_text(json.dumps(document))
    return directory
