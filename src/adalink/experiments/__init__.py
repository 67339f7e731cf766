"""Reproducing the AdaLink paper's claims at our scale: experiment definitions, a resumable runner, and reports.

``adalink experiment NAME`` (see :mod:`.cli`) runs one experiment; ``docs/paper-reproduction.md`` holds the results.
"""

from .definitions import EXPERIMENTS, Condition, Experiment, RunSpec, Scale, Verdict, build
from .runner import collect, run_experiment, run_id, run_one
from .stats import Summary, difference, summarize

__all__ = [
    "EXPERIMENTS",
    "Condition",
    "Experiment",
    "RunSpec",
    "Scale",
    "Summary",
    "Verdict",
    "build",
    "collect",
    "difference",
    "run_experiment",
    "run_id",
    "run_one",
    "summarize",
]
