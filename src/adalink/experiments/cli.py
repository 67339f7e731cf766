"""``adalink experiment NAME``: rerun one of the paper's tables at our scale and report it.

Runs every missing run (seed-major; finished runs are skipped), then writes ``<results>/<NAME>.json`` (mean ± std
per condition, verdicts), ``<results>/<NAME>.png`` and the experiment's section of the report document.
``--report-only`` skips training and reports what has finished. Set ``TQDM_DISABLE=1`` in the environment for logs
without progress bars.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .experiment import Experiment, Scale
from .report import glance, markdown, plot, read_stage1, update_document, write_summary
from .runner import collect, run_experiment, summaries
from .tables import EXPERIMENTS, build

__all__ = ["HELP", "add_arguments", "run"]

HELP = "rerun a table of the AdaLink paper at our scale (3 seeds, mean ± std, verdicts, plot)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=[*sorted(EXPERIMENTS), "all"], help="experiment (all = every one in turn)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 10 steps, 64 eval examples, results/quick")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps of every run (overrides the scale)")
    parser.add_argument("--max-eval", type=int, default=None, help="test examples per task (overrides the scale)")
    parser.add_argument("--model", default=None, help="text model of the text experiments (default minilm)")
    parser.add_argument("--results-dir", default="experiments/results", help="JSON results and plots")
    parser.add_argument("--work-dir", default="runs/experiments", help="the harness's output directories")
    parser.add_argument("--doc", default="docs/paper-reproduction.md", help="report document ('' = none)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    parser.add_argument("--keep-outputs", action="store_true", help="keep adapters/checkpoints of each run")
    parser.add_argument("--report-only", action="store_true", help="train nothing; report finished runs")
    parser.add_argument("--reverse", action="store_true", help="make the runs last-first (a second process sharing)")
    parser.add_argument(
        "--conditions",
        default=None,
        help="train only the rows whose label contains one of these comma-separated strings (the report covers all)",
    )


def _scale(args: argparse.Namespace) -> Scale:
    scale = Scale().quick() if args.quick else Scale()
    if args.model:
        scale = replace(scale, text_model=args.model)
    if args.steps is not None:
        scale = replace(scale, text_steps=args.steps, vqa_steps=args.steps, smollm_steps=args.steps)
    if args.max_eval is not None:
        scale = replace(scale, text_eval=args.max_eval, vqa_eval=args.max_eval, smollm_eval=args.max_eval)
    return scale


def _only(experiment: Experiment, wanted: str | None) -> Experiment:
    """``experiment`` with only the rows whose label contains one of the comma-separated ``wanted`` (None: all)."""
    if wanted is None:
        return experiment
    parts = [part.strip() for part in wanted.split(",") if part.strip()]
    return replace(experiment, conditions=tuple(c for c in experiment.conditions if any(p in c.label for p in parts)))


def run(args: argparse.Namespace) -> int:
    import torch

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        print(f"adalink experiment: error: --seeds {args.seeds!r}: expected comma-separated integers.")
        return 2
    if not seeds:
        print("adalink experiment: error: --seeds is empty.")
        return 2
    torch.set_num_threads(max(1, args.threads))
    results = Path(args.results_dir) / ("quick" if args.quick else "")
    names = sorted(EXPERIMENTS) if args.name == "all" else [args.name]
    experiments = {name: build(name, _scale(args)) for name in names}
    chosen = {name: _only(experiment, args.conditions) for name, experiment in experiments.items()}
    if not any(experiment.conditions for experiment in chosen.values()):
        rows = "; ".join(f"{name}: {', '.join(repr(c.label) for c in e.conditions)}" for name, e in experiments.items())
        print(f"adalink experiment: error: --conditions {args.conditions!r} matches no row ({rows}).")
        return 2
    failed = False
    for name in names:
        experiment, to_train = experiments[name], chosen[name]
        if not args.report_only and to_train.conditions:
            failures = run_experiment(
                to_train,
                seeds,
                results_dir=results,
                work_dir=Path(args.work_dir),
                keep_outputs=args.keep_outputs,
                reverse=args.reverse,
                log=lambda line: print(line, flush=True),
            )
            failed |= bool(failures)
            for line in failures:
                print(f"adalink experiment {name}: run failed: {line}")
        table = collect(experiment, seeds, results)
        verdicts = experiment.judge(summaries(table))
        write_summary(results / f"{name}.json", experiment, table, verdicts, seeds)
        plot(results / f"{name}.png", experiment, table)
        section = markdown(experiment, table, verdicts, seeds, read_stage1(results))
        if args.doc:
            update_document(Path(args.doc), name + ("-quick" if args.quick else ""), section)
        print(section)
    if args.doc and not args.quick:  # every claim at a glance, from every experiment's summary on disk
        update_document(Path(args.doc), "glance", glance(results, list(EXPERIMENTS)))
    return 1 if failed else 0
