"""The grid each published profile is run with, the command that reproduces it, and how much of it is finished.

A profile says how long each run trains; the grid (models, tasks, methods) is given on the command line. The report
needs that grid to count the planned runs and name the cells still missing while the bench is running, so it is
written down here once, next to the command it generates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .grid import best_lr, default_method_config
from .profiles import PROFILES
from .runner import BenchPlan

__all__ = ["REPRODUCTIONS", "CellProgress", "Reproduction", "progress"]


@dataclass(frozen=True)
class Reproduction:
    """The ``adalink bench`` grid whose results a profile's section of BENCHMARKS.md reports."""

    profile: str  # a key of PROFILES
    models: tuple[str, ...]  # --models
    tasks: tuple[str, ...]  # --tasks
    methods: tuple[str, ...] | None = None  # --methods; None = all (every registered method)
    threads: int = 1  # --threads: torch threads per run
    nice: bool = False  # prefix `nice -n 10` (the command shares the machine with other work)

    @property
    def command(self) -> str:
        methods = ",".join(self.methods) if self.methods else "all"
        command = (
            f"adalink bench --profile {self.profile} --models {','.join(self.models)} --tasks {','.join(self.tasks)} "
            f"--methods {methods} --threads {self.threads}"
        )
        return f"nice -n 10 {command}" if self.nice else command

    def plan(self) -> BenchPlan:
        from ..training.methods import method_names

        profile = PROFILES[self.profile]
        methods = list(self.methods) if self.methods else method_names()
        return BenchPlan(profile, list(self.models), list(self.tasks), methods, list(profile.seeds), list(profile.lrs))


REPRODUCTIONS: dict[str, Reproduction] = {
    "standard": Reproduction("standard", ("minilm",), ("tweets", "bbc"), threads=1),
    "quick": Reproduction("quick", ("minilm",), ("tweets", "bbc"), threads=2, nice=True),
}


@dataclass(frozen=True)
class CellProgress:
    """How many of one (model, task, method)'s planned runs have a result file (ok or failed)."""

    model: str
    task: str
    method: str
    planned: int  # runs the plan makes for this cell
    finished: int  # of those, runs with a result (ok or failed); skipped seeds after an all-failed sweep count
    failed: int  # of the finished runs, failed ones
    missing: str  # what is still to run, in words ("" when complete)

    @property
    def complete(self) -> bool:
        return self.finished >= self.planned

    @property
    def started(self) -> bool:
        return self.finished > 0


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9)


def _runs(documents: Sequence[dict[str, Any]], lr: float, seeds: Sequence[int]) -> list[dict[str, Any]]:
    return [d for d in documents if _same(d["spec"]["lr"], lr) and d["spec"]["seed"] in seeds]


def progress(plan: BenchPlan, documents: Sequence[dict[str, Any]]) -> list[CellProgress]:
    """One :class:`CellProgress` per planned (model, task, method), in the plan's run order.

    The seeds after the sweep run at the rate the sweep chose (on the sweep task, for the tasks that re-use it), so
    they are counted once that sweep is complete; where every sweep run failed the runner skips them (done).
    """
    mine = [d for d in documents if d["spec"]["profile"] == plan.profile.name]
    out = []
    for model in plan.models:
        chosen: dict[str, float | None] = {}  # method -> rate chosen by its complete sweep (None: every run failed)
        for task, sweeps in plan.ordered_tasks():
            for method in plan.methods:
                recipe = default_method_config(method)  # runs of another config do not count toward this plan
                runs = [d for d in mine if (d["spec"]["model"], d["spec"]["task"], d["spec"]["method"]) == (
                    model, task, method) and d["spec"].get("method_config") == recipe]  # fmt: skip
                sweep = plan.sweep_lrs(method) if sweeps else []
                out.append(_cell(plan, model, task, method, runs, sweep, chosen))
    return out


def _cell(
    plan: BenchPlan,
    model: str,
    task: str,
    method: str,
    runs: list[dict[str, Any]],
    sweep: list[float],
    chosen: dict[str, float | None],
) -> CellProgress:
    """Progress of one cell; a sweep (``sweep`` not empty) records its chosen rate in ``chosen`` when complete."""
    seeds = list(plan.seeds)
    rest = seeds[1:] if sweep else seeds  # the seeds run at the chosen rate
    planned = len(sweep) + len(rest)
    swept = {lr: _runs(runs, lr, seeds[:1]) for lr in sweep}
    done = [d for found in swept.values() for d in found[:1]]
    if sweep and len(done) < len(sweep):
        return _made(model, task, method, planned, done, f"sweep {len(done)} of {len(sweep)} rates")
    if sweep:
        chosen[method] = best_lr(done)
    elif method not in chosen:
        return _made(model, task, method, planned, done, "waits for the sweep's rate")
    lr = chosen[method]
    if lr is None:  # every sweep run failed: the runner skips the seeds
        return CellProgress(model, task, method, planned, planned, len(done), "")
    seeded = [found[0] for seed in rest if (found := _runs(runs, lr, [seed]))]
    first = len(seeds) - len(rest)  # the sweep's run at the chosen rate is the first seed
    missing = f"{first + len(seeded)} of {len(seeds)} seeds" if len(seeded) < len(rest) else ""
    return _made(model, task, method, planned, done + seeded, missing)


def _made(model: str, task: str, method: str, planned: int, done: list[dict[str, Any]], missing: str) -> CellProgress:
    failed = sum(d.get("status") != "ok" for d in done)
    return CellProgress(model, task, method, planned, len(done), failed, missing)
