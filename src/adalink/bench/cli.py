"""``adalink bench``: the survey's head-to-head comparison (§11), re-run on our models, tasks and methods."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import AdalinkError
from .profiles import PROFILES

__all__ = ["HELP", "add_arguments", "run"]

HELP = "compare every method (score, parameters, memory, throughput, forgetting) and write BENCHMARKS.md"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="minilm", help="comma-separated aliases or local checkpoint dirs")
    parser.add_argument("--tasks", default="tweets,bbc", help="comma-separated packaged tasks")
    parser.add_argument("--methods", default="all", help="comma-separated method names, or all (every registered)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the profile's)")
    parser.add_argument("--lrs", default=None, help="comma-separated learning rates or 'default' (default: profile's)")
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES), help="training/measuring budget")
    parser.add_argument("--out", default="benchmarks/results", help="results: one JSON per run, plots/, perf/")
    parser.add_argument("--report", default="BENCHMARKS.md", help="the Markdown report to write")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = torch's default)")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per run (default: the profile's)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the profile's optimiser steps")
    parser.add_argument("--max-eval", type=int, default=None, help="override the profile's evaluation size")
    parser.add_argument("--max-length", type=int, default=None, help="override the profile's max input tokens")
    parser.add_argument(
        "--head-lr",
        type=float,
        default=None,
        help="learning rate of the new classification head, the same for every method (default: the profile's; "
        + ", ".join(
            f"{name}: {profile.head_lr:g}" if profile.head_lr else f"{name}: each method's rate"
            for name, profile in PROFILES.items()
        )
        + ")",
    )
    parser.add_argument("--retry-failed", action="store_true", help="re-run runs recorded as failed")
    parser.add_argument("--report-only", action="store_true", help="only aggregate existing results and report")
    parser.add_argument(
        "--measure-memory",
        action="store_true",
        help="measure again the training memory (optimiser steps alone) of every method (or --methods) and task "
        "of --profile in --out whose runs recorded only their whole run's peak: one training run each (the runs' "
        "own steps, or --max-steps) in a fresh process, without validation, timing or forgetting, saved under "
        "<out>/train-memory/; then report",
    )


def run(args: argparse.Namespace) -> int:
    from .report import write_report

    out, report = Path(args.out), Path(args.report)
    if args.measure_memory or not args.report_only:
        from ..training.methods import method_names

        known = method_names()
        methods = known if args.methods.strip() == "all" else _csv(args.methods)
        unknown = [m for m in methods if m not in known]
        if unknown or not methods:
            message = f"--methods {args.methods!r}: unknown {unknown}; known {known}."
            print(f"adalink bench: error: {message}", file=sys.stderr)
            return 2
    if args.measure_memory:
        from .runner import measure_memory

        measured = measure_memory(
            out,
            profile=args.profile,
            steps=args.max_steps,
            threads=args.threads,
            timeout_s=args.timeout or 3600,
            methods=None if args.methods.strip() == "all" else methods,
        )
        failed = [r["run_id"] for r in measured if r.get("status") != "ok"]
        print(f"adalink bench: training memory of {len(measured) - len(failed)} cell(s) measured, failed: {failed}")
    elif not args.report_only:
        from .runner import BenchPlan, run_bench

        profile = PROFILES[args.profile]
        try:
            seeds = [int(s) for s in _csv(args.seeds)] if args.seeds else list(profile.seeds)
        except ValueError:
            print(f"adalink bench: error: --seeds {args.seeds!r} is invalid: expected integers.", file=sys.stderr)
            return 2
        plan = BenchPlan(
            profile=profile,
            models=_csv(args.models),
            tasks=_csv(args.tasks),
            methods=methods,
            seeds=seeds or [0],
            lrs=_csv(args.lrs) if args.lrs else list(profile.lrs),
            threads=args.threads,
            max_steps=args.max_steps,
            max_eval=args.max_eval,
            max_length=args.max_length,
            head_lr=args.head_lr,
        )
        try:
            plan.total_runs()  # validates the learning-rate tokens before anything runs
        except AdalinkError as err:
            print(f"adalink bench: error: {err}", file=sys.stderr)
            return 2
        results = run_bench(plan, out, retry_failed=args.retry_failed, timeout_s=args.timeout)
        failed = [r["run_id"] for r in results if r.get("status") != "ok"]
        print(f"adalink bench: {len(results) - len(failed)} run(s) ok, {len(failed)} failed: {failed}")
    path = write_report(out, report)
    print(f"adalink bench: wrote {path} and plots under {out / 'plots'}")
    return 0
