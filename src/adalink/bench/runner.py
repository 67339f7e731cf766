"""Run the bench grid: each run in a fresh worker process, resumable, with one progress bar over the grid."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .grid import RunSpec, best_lr, read_result, resolve_lr, result_path, write_json
from .profiles import Profile

__all__ = ["BenchPlan", "run_bench"]


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

    def spec(self, model: str, task: str, method: str, lr: float, seed: int, validate: bool) -> RunSpec:
        p = self.profile
        return RunSpec(
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
        )

    def sweep_lrs(self, method: str) -> list[float]:
        return sorted({resolve_lr(token, method) for token in self.lrs}, reverse=True)

    def total_runs(self) -> int:
        per_cell = {m: len(self.sweep_lrs(m)) + len(self.seeds) - 1 for m in self.methods}
        return len(self.models) * len(self.tasks) * sum(per_cell.values())


def run_bench(plan: BenchPlan, out: Path, *, retry_failed: bool = False, timeout_s: int | None = None) -> list[dict]:
    """Run (or resume) the whole grid; returns every result document of the grid."""
    out = Path(out)
    results: list[dict[str, Any]] = []
    progress = tqdm(total=plan.total_runs(), desc="bench", unit="run")
    try:
        for model in plan.models:
            for task in plan.tasks:
                for method in plan.methods:
                    lrs = plan.sweep_lrs(method)
                    first, rest = plan.seeds[0], list(plan.seeds[1:])
                    sweep = [
                        _one(
                            plan.spec(model, task, method, lr, first, len(lrs) > 1),
                            out,
                            progress,
                            retry_failed,
                            timeout_s or plan.profile.timeout_s,
                        )
                        for lr in lrs
                    ]
                    results.extend(sweep)
                    chosen = best_lr(sweep)
                    for seed in rest:
                        if chosen is None:  # every sweep run failed: the seeds have nothing to re-run
                            progress.update(1)
                            continue
                        spec = plan.spec(model, task, method, chosen, seed, False)
                        results.append(_one(spec, out, progress, retry_failed, timeout_s or plan.profile.timeout_s))
    finally:
        progress.close()
    return results


def _one(spec: RunSpec, out: Path, progress, retry_failed: bool, timeout_s: int) -> dict[str, Any]:
    progress.set_postfix_str(f"{spec.model_slug} {spec.task} {spec.method} lr={spec.lr:g} seed={spec.seed}")
    done = read_result(out, spec)
    if done is not None and (done.get("status") == "ok" or not retry_failed):
        progress.update(1)
        return done
    document = _launch(spec, out, timeout_s)
    status = document.get("status")
    if status != "ok":
        tqdm.write(f"bench: {spec.run_id} failed: {document.get('error')}")
    progress.update(1)
    return document


def _launch(spec: RunSpec, out: Path, timeout_s: int) -> dict[str, Any]:
    """Run ``spec`` in a fresh worker process; a crash or timeout is recorded as an error result."""
    import json

    target = result_path(out, spec)
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
                code = subprocess.run(
                    [sys.executable, "-m", "adalink.bench.worker", str(spec_file), str(target)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    timeout=timeout_s,
                    check=False,
                ).returncode
                error = f"worker exited with code {code}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout_s} s"
        done = read_result(out, spec)
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
    write_json(target, document)
    return document
