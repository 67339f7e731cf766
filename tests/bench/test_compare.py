"""The standard profile's aggregation: chosen rate, mean ± std over seeds, the Welch verdicts against AdaLink and
full tuning, and the Pareto frontier of score against each cost, on a small fake result set."""

import math

import pytest

from adalink.bench.aggregate import aggregate
from adalink.bench.compare import (
    BETTER,
    COSTS,
    NO_DIFFERENCE,
    NO_SPREAD,
    WORSE,
    panels,
    pareto_front,
    versus,
)
from bench import _fakes as fakes


def _results() -> list[dict]:
    sweep = fakes.sweep_and_seeds
    return [
        *sweep("adalink", "tweets", {6e-4: 0.70, 2e-3: 0.75, 6e-3: 0.78}, {0: 0.80, 1: 0.82, 2: 0.84}),
        *sweep("lora", "tweets", {3e-4: 0.80, 1e-3: 0.80, 3e-3: 0.79}, {0: 0.83, 1: 0.85, 2: 0.87}),  # a tie
        *sweep("full", "tweets", {1.5e-5: 0.85, 5e-5: 0.88, 1.5e-4: 0.86}, {0: 0.90, 1: 0.91, 2: 0.92}),
        *sweep("bitfit", "tweets", {3e-4: 0.70, 1e-3: 0.72, 3e-3: 0.71}, {0: 0.81}),  # its other seeds still to run
        *[fakes.run("adalink", "bbc", 6e-3, seed, score) for seed, score in enumerate([0.60, 0.62, 0.64])],
        *[fakes.run("lora", "bbc", 3e-4, seed, score) for seed, score in enumerate([0.94, 0.95, 0.96])],
        *[fakes.run("full", "bbc", 5e-5, seed, score) for seed, score in enumerate([0.95, 0.96, 0.97])],
        fakes.run("houlsby", "tweets", 1e-3, 0, 0.0, status="error"),
    ]


@pytest.fixture(scope="module")
def aggregated(fake_test_sets):
    cells, rows = aggregate(_results())
    return {(c.task, c.method): c for c in cells}, cells, rows


def test_chosen_rate_is_the_best_validation_score_and_the_smaller_rate_on_ties(aggregated):
    by, _, _ = aggregated
    rates = {key: cell.lr for key, cell in by.items()}
    assert rates == {
        ("tweets", "adalink"): 6e-3,
        ("tweets", "lora"): 3e-4,
        ("tweets", "full"): 5e-5,
        ("tweets", "bitfit"): 1e-3,
        ("bbc", "adalink"): 6e-3,
        ("bbc", "lora"): 3e-4,
        ("bbc", "full"): 5e-5,
    }
    assert by[("tweets", "adalink")].sweep == {6e-4: 0.70, 2e-3: 0.75, 6e-3: 0.78}
    assert ("tweets", "houlsby") not in by  # its only run failed


def test_mean_and_std_over_the_seeds_at_the_chosen_rate(aggregated):
    by, _, _ = aggregated
    adalink = by[("tweets", "adalink")].summary
    assert (adalink.mean, adalink.std, adalink.n) == (pytest.approx(0.82), pytest.approx(0.02), 3)
    assert by[("tweets", "full")].summary.std == pytest.approx(0.01)
    bitfit = by[("tweets", "bitfit")].summary
    assert (bitfit.mean, bitfit.std, bitfit.n) == (pytest.approx(0.81), 0.0, 1)
    assert by[("tweets", "adalink")].majority_baseline == 0.691


def test_verdicts_against_adalink_and_full_tuning(aggregated, fake_test_sets):
    _, cells, _ = aggregated
    verdicts = {(v.task, v.method, v.reference): v for ref in ("adalink", "full") for v in versus(cells, ref)}
    full = verdicts[("tweets", "full", "adalink")]  # +9 points
    # seeds: 0.02²/3 + 0.01²/3; the test sets (10,000 examples): the mean over seeds of each run's p(1 - p)/N
    binomial = sum(p * (1 - p) for p in (0.90, 0.91, 0.92, 0.80, 0.82, 0.84)) / 3 / fake_test_sets
    assert full.difference.delta == pytest.approx(0.09)
    assert full.difference.se == pytest.approx(math.sqrt(0.0005 / 3 + binomial))
    assert full.verdict == BETTER and full.text() == "+9.0 ± 3.9 (p = 0.003): **better**"
    # +3 points, t = 1.6: not real (the old rule, 2 s.e. without the test set, said the same)
    assert verdicts[("tweets", "lora", "adalink")].verdict == NO_DIFFERENCE
    assert verdicts[("tweets", "lora", "full")].verdict == WORSE
    assert verdicts[("tweets", "adalink", "full")].verdict == WORSE
    assert verdicts[("tweets", "bitfit", "adalink")].verdict == NO_SPREAD  # one seed: no spread, nothing is real
    assert verdicts[("tweets", "bitfit", "adalink")].text() == "-1.0 (one seed: no spread)"
    assert verdicts[("bbc", "lora", "full")].verdict == NO_DIFFERENCE  # -1 point ± 2.3
    assert verdicts[("bbc", "lora", "adalink")].verdict == BETTER
    assert ("bbc", "bitfit", "adalink") not in verdicts and ("tweets", "full", "full") not in verdicts


def test_pareto_front_needs_one_strict_improvement():
    assert pareto_front({"a": (0.8, 10), "b": (0.8, 10)}) == ["a", "b"]  # equal: neither dominates
    assert pareto_front({"a": (0.8, 10), "b": (0.8, 20)}) == ["a"]
    assert pareto_front({"a": (0.8, 10), "b": (0.9, 10)}) == ["b"]
    assert pareto_front({"a": (0.8, 10), "b": (0.9, 20), "c": (0.85, 30)}) == ["a", "b"]
    assert pareto_front({"a": (0.8, 100), "b": (0.8, 200)}, lower_cost_is_better=False) == ["b"]
    assert pareto_front({"a": (0.9, 100), "b": (0.8, 200)}, lower_cost_is_better=False) == ["b", "a"]


def test_frontier_members_per_task_and_over_tasks(aggregated):
    _, cells, rows = aggregated
    fronts = {(cost.name, panel.title): panel.front for cost in COSTS for panel in panels(cells, rows, cost, "tweets")}
    assert list(fronts)[:3] == [("parameters", "minilm, tweets"), ("parameters", "minilm, bbc"),
                                ("parameters", "minilm, mean over 2 tasks")]  # fmt: skip
    # tweets: adalink 0.82, bitfit 0.81, lora 0.85, full 0.91 (costs in bench/_fakes.py)
    assert fronts[("parameters", "minilm, tweets")] == ["adalink", "lora", "full"]  # bitfit: more params, lower score
    assert fronts[("memory", "minilm, tweets")] == ["adalink", "full"]  # lora: more memory than full tuning
    assert fronts[("train speed", "minilm, tweets")] == ["adalink", "lora", "full"]  # fastest first
    # the mean over tasks leaves out bitfit, which has no bbc run
    mean = next(p for p in panels(cells, rows, COSTS[0]) if p.title == "minilm, mean over 2 tasks")
    assert sorted(mean.points) == ["adalink", "full", "lora"]
    assert mean.points["adalink"] == (pytest.approx(0.72), 6_144)
    assert fronts[("memory", "minilm, mean over 2 tasks")] == ["adalink", "full"]
