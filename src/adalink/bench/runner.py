"""Run the bench grid: each run in a fresh worker process, resumable, with one progress bar over the grid."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..io import write_json_atomic
from .aggregate import load_results
from .grid import BenchRun, best_lr, default_method_config, read_document, read_result, resolve_lr, result_path
from .profiles import Profile
from .train_memory import (
    current_training_memory,
    measurement_name,
    measurement_path,
    measurement_spec,
    needs_measurement,
)

__all__ = ["BenchPlan", "measure_memory", "run_bench"]


@dataclass(frozen=True)
class BenchPlan:
    """The grid of one ``adalink bench`` call."""

    profile: Profile
    models: Sequence[str]
    tasks: Sequence[str]
    methods: Sequence[str]
    seeds: Sequence[int]
    lrs: Sequence[str]  # tokens: numbers or "default"
    threads: int = 0  # torch threads per worker; 0 = torch's default
    max_steps: int | None = None  # override of the profile's steps (CI smoke test)
    max_eval: int | None = None  # override of the profile's evaluation size
    max_length: int | None = None  # override of the profile's max input tokens
    head_lr: float | None = None  # override of the profile's head learning rate

    def spec(self, model: str, task: str, method: str, lr: float, seed: int, validate: bool) -> BenchRun:
        p = self.profile
        return BenchRun(
            profile=p.name,
            model=model,
            task=task,
            method=method,
            lr=lr,
            head_lr=self.head_lr if self.head_lr is not None else p.head_lr,
            seed=seed,
            batch_size=p.batch_size,
            grad_accum=p.grad_accum(model),
            max_length=self.max_length or p.max_length,
            max_steps=self.max_steps if self.max_steps is not None else p.max_steps,
            epochs=p.epochs,
            min_steps=p.min_steps,
            max_eval=self.max_eval if self.max_eval is not None else p.max_eval,
            validate=validate,
            infer_batches=p.infer_batches,
            infer_batch_size=p.infer_batch_size,
            infer_rounds=p.infer_rounds,
            generic_texts=p.generic_texts,
            threads=self.threads,
            method_config=default_method_config(method),
        )

    def sweep_lrs(self, method: str) -> list[float]:
        return sorted({resolve_lr(token, method) for token in self.lrs}, reverse=True)

    def ordered_tasks(self) -> list[tuple[str, bool]]:
        """(task, sweeps its own rate) in run order: the profile's ``sweep_task`` first, where it is in the plan,
        and every other task then re-uses the rate chosen there; without it every task sweeps its own."""
        shared = self.profile.sweep_task if self.profile.sweep_task in self.tasks else None
        if shared is None:
            return [(task, True) for task in self.tasks]
        return [(shared, True)] + [(task, False) for task in self.tasks if task != shared]

    def total_runs(self) -> int:
        total = 0
        for _, sweeps in self.ordered_tasks():
            per_method = [
                len(self.sweep_lrs(m)) + len(self.seeds) - 1 if sweeps else len(self.seeds) for m in self.methods
            ]
            total += len(self.models) * sum(per_method)
        return total


def run_bench(plan: BenchPlan, out: Path, *, retry_failed: bool = False, timeout_s: int | None = None) -> list[dict]:
    """Run (or resume) the whole grid; returns every result document of the grid."""
    out = Path(out)
    results: list[dict[str, Any]] = []
    progress = tqdm(total=plan.total_runs(), desc="bench", unit="run")
    timeout = timeout_s or plan.profile.timeout_s

    def one(model: str, task: str, method: str, lr: float, seed: int, validate: bool) -> dict[str, Any]:
        return _one(plan.spec(model, task, method, lr, seed, validate), out, progress, retry_failed, timeout)

    try:
        for model in plan.models:
            chosen: dict[str, float | None] = {}  # method -> rate chosen on the sweep task
            for task, sweeps in plan.ordered_tasks():
                for method in plan.methods:
                    seeds = list(plan.seeds)
                    if sweeps:
                        lrs = plan.sweep_lrs(method)
                        sweep = [one(model, task, method, lr, seeds[0], len(lrs) > 1) for lr in lrs]
                        results.extend(sweep)
                        chosen[method], seeds = best_lr(sweep), seeds[1:]
                    for seed in seeds:
                        rate = chosen[method]
                        if rate is None:  # every sweep run failed: the seeds have nothing to re-run
                            progress.update(1)
                            continue
                        results.append(one(model, task, method, rate, seed, False))
    finally:
        progress.close()
    return results


def _one(spec: BenchRun, out: Path, progress: tqdm, retry_failed: bool, timeout_s: int) -> dict[str, Any]:
    progress.set_postfix_str(f"{spec.model_slug} {spec.task} {spec.method} lr={spec.lr:g} seed={spec.seed}")
    done = read_result(out, spec)
    if done is not None and (done.get("status") == "ok" or not retry_failed):
        progress.update(1)
        return done
    document = _launch(spec, result_path(out, spec), timeout_s)
    status = document.get("status")
    if status != "ok":
        tqdm.write(f"bench: {spec.run_id} failed: {document.get('error')}")
    progress.update(1)
    return document


def measure_memory(
    out: Path,
    *,
    profile: str,
    steps: int | None,
    threads: int,
    timeout_s: int,
    methods: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Measure the training memory of every (model, task, method, config) of ``profile`` in ``out`` whose runs did
    not record it themselves (:mod:`.train_memory`): one run of its first run's spec, at ``steps`` optimiser steps
    (None: the run's own), unless measured already; only ``methods`` where given. Configs that are today's defaults
    go first."""
    firsts: dict[str, dict[str, Any]] = {}
    for document in load_results(out):
        spec = document["spec"]
        if spec["profile"] != profile or not needs_measurement(document):
            continue
        if methods is not None and spec["method"] not in methods:
            continue
        name = measurement_name(spec)
        if name is not None and (name not in firsts or spec["seed"] < firsts[name]["spec"]["seed"]):
            firsts[name] = document
    order = sorted(firsts, key=lambda n: (firsts[n]["spec"]["method_config"] != _today(firsts[n]), n))
    results = []
    for name in tqdm(order, desc="training memory", unit="run"):
        document = firsts[name]
        spec = replace(measurement_spec(document["spec"], steps), threads=threads)
        target = measurement_path(out, name)
        done = read_document(target, spec)
        if done is None or done.get("status") != "ok" or not current_training_memory(done):
            done = _launch(spec, target, timeout_s, memory_only=True)
            tqdm.write(f"bench: training memory of {name}: {done.get('train_memory_bytes') or done.get('error')}")
        results.append(done)
    return results


def _today(document: dict[str, Any]) -> dict[str, Any]:
    return default_method_config(document["spec"]["method"])


def _launch(spec: BenchRun, target: Path, timeout_s: int, *, memory_only: bool = False) -> dict[str, Any]:
    """Run ``spec`` in a fresh worker process writing ``target``; a crash or timeout is recorded as an error."""
    import json

    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # a stale or failed result: only what this worker writes counts
    with tempfile.TemporaryDirectory(prefix="adalink-bench-spec-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec.to_dict()))
        log_file = Path(tmp) / "worker.log"
        env = dict(os.environ, TQDM_DISABLE="1", TOKENIZERS_PARALLELISM="false")
        if spec.threads > 0:
            env["OMP_NUM_THREADS"] = str(spec.threads)
        began = time.perf_counter()
        with open(log_file, "w") as log:
            try:
                mode = ["--memory-only"] if memory_only else []
                code = subprocess.run(
                    [sys.executable, "-m", "adalink.bench.worker", *mode, str(spec_file), str(target)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout_s,
                    check=False,
                ).returncode
                error = f"worker exited with code {code}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout_s} s"
        done = read_document(target, spec)
        if done is not None:
            return done
        error += f" after {time.perf_counter() - began:.0f} s"
        tail = log_file.read_text()[-2000:] if log_file.exists() else ""
    document = {
        "spec": spec.to_dict(),
        "spec_key": spec.key(),
        "run_id": spec.run_id,
        "status": "error",
        "error": error,
        "log_tail": tail,
    }
    write_json_atomic(target, document, sort_keys=True)
    return document
