"""Reproducing the AdaLink paper's claims at our scale: the paper's tables as experiments, a resumable runner, reports.

``adalink experiment NAME`` (see :mod:`.cli`) runs one experiment; ``docs/paper-reproduction.md`` holds the results.
"""

from ..stats import Summary, difference, summarize
from .experiment import Condition, Experiment, Scale, TrainRun
from .runner import collect, run_experiment, run_id, run_one
from .tables import EXPERIMENTS, build
from .verdicts import Verdict

__all__ = [
    "EXPERIMENTS",
    "Condition",
    "Experiment",
    "Scale",
    "Summary",
    "TrainRun",
    "Verdict",
    "build",
    "collect",
    "difference",
    "run_experiment",
    "run_id",
    "run_one",
    "summarize",
]
