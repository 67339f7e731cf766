"""Run an experiment's training runs (skipping finished ones) and collect their scores.

Each run is one in-process call of :func:`adalink.training.loop.train`; its result is a small JSON file in
``<results_dir>/runs/<run id>.json`` (the run id names the settings and ends in a hash of all of them), written
only when the run finished, so rerunning an experiment skips what is done and experiments sharing a run (e.g. the
easy-VQA AdaLink r=64 of Tables 2 and 3) make it once. The harness's output directory (adapter, checkpoints,
for full tuning the whole model) goes to ``<work_dir>/<run id>`` and is deleted afterwards unless kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data import scored_examples
from ..io import write_json_atomic
from ..provenance import provenance
from ..stats import Summary, sampling_variance, summarize
from .experiment import Experiment, TrainRun

__all__ = [
    "STAGE1_FILE",
    "UNRECORDED",
    "RunResult",
    "collect",
    "provenance_unrecorded",
    "record_stage1",
    "run_experiment",
    "run_id",
    "run_one",
]

STAGE1_FILE = "stage1-vlm.json"  # the stage-1 VLM's own pretraining.json, copied beside the results

RunResult = dict[str, Any]
# The "provenance" of a committed run file made before runs recorded their commit ("environment"): nothing says which
# code made it, only its command and settings.
UNRECORDED = "unrecorded"
_KEPT_METRICS = (
    "score",
    "per_task",
    "majority_baseline",
    "trainable_params",
    "head_params",
    "train_seconds",
    "steps",
    "initial_loss",
    "final_loss",
    "method_config",  # every field of the method's config the run trained
)


def run_id(spec: TrainRun, seed: int) -> str:
    """A readable, unique file name for ``spec`` at ``seed``."""
    key = json.dumps({**spec.key(), "seed": seed}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    model = Path(spec.model).name if os.sep in spec.model else spec.model
    task = spec.task.replace(",", "+") + (f"[{spec.question_types}]" if spec.question_types else "")
    extra = "".join(f"-{k}" for k, v in spec.overrides if v is True)
    extra += f"-{spec.task_mixing}" if spec.task_mixing != "proportional" else ""
    extra += f"-lr{spec.lr:g}" if spec.lr is not None else ""
    return f"{model}-{task}-{spec.method}{extra}-r{spec.rank}-{spec.max_steps}steps-seed{seed}-{digest}"


def run_one(spec: TrainRun, seed: int, *, results_dir: Path, work_dir: Path, keep_outputs: bool = False) -> RunResult:
    """Train ``spec`` at ``seed`` unless its result file exists; return the result (cached or new).

    Raises:
        Whatever the harness raises (the caller records it); no result file is written then.
    """
    from ..training.args import TrainArgs
    from ..training.loop import train

    path = results_dir / "runs" / f"{run_id(spec, seed)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    out = work_dir / run_id(spec, seed)
    if out.exists():
        shutil.rmtree(out)  # a run killed half-way: start again (its checkpoints used other settings' timing)
    args = TrainArgs(**spec.train_options(), seed=seed, output_dir=str(out), save_every=spec.max_steps)
    began = time.perf_counter()
    metrics = train(args)
    result = {
        "run_id": run_id(spec, seed),
        "spec": asdict(spec),
        "seed": seed,
        "command": spec.command(seed),
        "wall_seconds": round(time.perf_counter() - began, 1),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{k: metrics[k] for k in _KEPT_METRICS if k in metrics},
        "environment": provenance(),  # package versions, commit and dirty tree, hardware
    }
    write_json_atomic(path, result, final_newline=True)
    from ..runs.loading import VLM_ALIAS

    if args.base.model == VLM_ALIAS:
        record_stage1(results_dir)
    if not keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    return result


def record_stage1(results_dir: Path) -> None:
    """Copy the cached stage-1 VLM's ``pretraining.json`` (its zero-shot scores) to ``results_dir``, once, so that the
    report reads them from a committed file."""
    from ..vision.pretrain import PRETRAIN_FILE, cached_pretrained_vlm

    target = Path(results_dir) / STAGE1_FILE
    if not target.is_file():
        metrics = json.loads((cached_pretrained_vlm() / PRETRAIN_FILE).read_text())
        write_json_atomic(target, {k: v for k, v in metrics.items() if k not in ("losses", "vision_losses")})


def run_experiment(
    experiment: Experiment,
    seeds: Sequence[int],
    *,
    results_dir: Path,
    work_dir: Path,
    keep_outputs: bool = False,
    reverse: bool = False,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Make every run of ``experiment`` for every seed (seed-major, so a cut-short session has whole seeds).

    ``reverse`` walks the plan from its end, so that a second process can share the work with a first one (each
    skips what the other has finished; they can collide only on the run where they meet).

    Returns:
        One line per failed run (the experiment goes on after a failure).
    """
    failures = []
    plan = [(seed, c, spec) for seed in seeds for c in experiment.conditions for spec in c.specs]
    plan = plan[::-1] if reverse else plan
    for i, (seed, condition, spec) in enumerate(plan, 1):
        name = run_id(spec, seed)
        cached = (results_dir / "runs" / f"{name}.json").is_file()
        log(f"[{experiment.name} {i}/{len(plan)}] {condition.label} seed {seed}: {'cached' if cached else 'running'}")
        try:
            result = run_one(spec, seed, results_dir=results_dir, work_dir=work_dir, keep_outputs=keep_outputs)
        except Exception as error:
            failures.append(f"{name}: {type(error).__name__}: {error}")
            log(f"  FAILED {failures[-1]}")
            traceback.print_exc(file=sys.stderr)
            continue
        log(f"  score {result['score']:.4f} ({result['wall_seconds']} s)")
    return failures


def provenance_unrecorded(run: RunResult) -> bool:
    """Whether ``run`` does not record the commit that made it (marked ``"provenance": "unrecorded"``, or no
    ``environment.source.commit``)."""
    commit = ((run.get("environment") or {}).get("source") or {}).get("commit")
    return run.get("provenance") == UNRECORDED or not commit


def collect(experiment: Experiment, seeds: Sequence[int], results_dir: Path) -> dict[str, dict[str, Any]]:
    """Per condition label: its :class:`Summary`, per-task summaries, per-seed scores and parameter counts.

    A condition counts a seed only when all of its runs for that seed finished; conditions with no finished seed
    are left out.
    """
    table: dict[str, dict[str, Any]] = {}
    for condition in experiment.conditions:
        per_seed: dict[int, dict[str, float]] = {}
        params, baseline, commands, unrecorded = {}, {}, [], 0
        for seed in seeds:
            runs = []
            for spec in condition.specs:
                path = results_dir / "runs" / f"{run_id(spec, seed)}.json"
                if path.is_file():
                    runs.append(json.loads(path.read_text()))
            if len(runs) != len(condition.specs):
                continue
            per_seed[seed] = {task: score for run in runs for task, score in run["per_task"].items()}
            for run in runs:
                params.update({"/".join(run["spec"]["task"].split(",")): run.get("trainable_params")})
                baseline.update(run.get("majority_baseline", {}))
                commands.append(run["command"])
                unrecorded += provenance_unrecorded(run)
        if not per_seed:
            continue
        scores = [sum(tasks.values()) / len(tasks) for tasks in per_seed.values()]
        task_names = sorted(next(iter(per_seed.values())))
        examples = _examples(condition.specs)
        runs = list(per_seed.values())
        table[condition.label] = {
            "summary": summarize(scores, sampling_variance(runs, examples)),
            "per_task": {
                t: summarize(
                    [tasks[t] for tasks in runs], sampling_variance([{t: tasks[t]} for tasks in runs], examples)
                )
                for t in task_names
            },
            "scores": dict(zip(per_seed, scores, strict=True)),
            "trainable_params": params,
            "majority_baseline": baseline,
            "commands": commands,
            "unrecorded_runs": unrecorded,  # runs of this row whose file records no commit
        }
    return table


def _examples(specs: Sequence[TrainRun]) -> dict[str, int]:
    """Per task of ``specs``, the number of test examples its runs score (for the test-set sampling error)."""
    return {
        task: scored_examples(task, spec.max_eval, spec.question_types)
        for spec in specs
        for task in spec.task.split(",")
    }


def summaries(table: dict[str, dict[str, Any]]) -> dict[str, Summary]:
    """Condition label -> :class:`Summary` of its score."""
    return {label: row["summary"] for label, row in table.items()}
