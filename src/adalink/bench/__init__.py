"""``adalink bench``: the survey's comparison of PEFT methods (score, trainable parameters, memory, training and
inference throughput, forgetting), one fresh process per run, resumable, reported as BENCHMARKS.md and plots."""

from .aggregate import aggregate, load_results
from .grid import BenchRun
from .profiles import PROFILES, Profile
from .report import write_report
from .runner import BenchPlan, run_bench

__all__ = ["PROFILES", "BenchPlan", "BenchRun", "Profile", "aggregate", "load_results", "run_bench", "write_report"]
