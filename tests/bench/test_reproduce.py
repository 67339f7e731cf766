"""The grid behind a profile's section: the command that reproduces it, and which planned runs are finished."""

from adalink.bench.grid import resolve_lr
from adalink.bench.profiles import PROFILES
from adalink.bench.reproduce import REPRODUCTIONS, progress
from adalink.bench.runner import BenchPlan
from bench import _fakes as fakes


def test_the_standard_command():
    command = "adalink bench --profile standard --models minilm --tasks tweets,bbc --methods all --threads 1"
    assert REPRODUCTIONS["standard"].command == command


def test_progress_counts_planned_runs_and_names_what_is_missing():
    profile = PROFILES["standard"]
    plan = BenchPlan(profile, ["minilm"], ["tweets", "bbc"], ["adalink", "lora", "full", "bitfit"], [0, 1, 2],
                     list(profile.lrs))  # fmt: skip
    sweep = fakes.sweep_and_seeds
    low, mid, high = (resolve_lr(token, "adalink") for token in ("0.3x", "1x", "3x"))
    documents = [
        *sweep("adalink", "tweets", {low: 0.70, mid: 0.75, high: 0.78}, {0: 0.8, 1: 0.8, 2: 0.8}),
        fakes.run("adalink", "bbc", high, 0, 0.6),
        fakes.run("adalink", "bbc", mid, 1, 0.6),  # not at the rate chosen on tweets: not part of the plan
        fakes.run("lora", "tweets", 3e-4, 0, 0.8, validation=0.8),
        fakes.run("lora", "tweets", 1e-3, 0, 0.8, validation=0.8),
        *[fakes.run("full", "tweets", lr, 0, 0.0, validation=0.0, status="error") for lr in (1.5e-5, 5e-5, 1.5e-4)],
        fakes.run("bitfit", "tweets", 1e-3, 0, 0.8, profile="quick"),  # another profile
        fakes.run("bitfit", "tweets", 1e-3, 0, 0.8, validation=0.8, config={"bias": "all"}),  # another config
    ]
    states = {(p.task, p.method): (p.planned, p.finished, p.failed, p.missing) for p in progress(plan, documents)}
    assert states == {
        ("tweets", "adalink"): (5, 5, 0, ""),
        ("tweets", "lora"): (5, 2, 0, "sweep 2 of 3 rates"),
        ("tweets", "full"): (5, 5, 3, ""),  # every sweep run failed: the runner skips its seeds
        ("tweets", "bitfit"): (5, 0, 0, "sweep 0 of 3 rates"),
        ("bbc", "adalink"): (3, 1, 0, "1 of 3 seeds"),
        ("bbc", "lora"): (3, 0, 0, "waits for the sweep's rate"),
        ("bbc", "full"): (3, 3, 0, ""),
        ("bbc", "bitfit"): (3, 0, 0, "waits for the sweep's rate"),
    }
    assert sum(p.planned for p in progress(plan, documents)) == plan.total_runs()
