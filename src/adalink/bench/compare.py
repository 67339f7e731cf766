"""Which methods really differ, and which are worth their cost: the significance of each method's difference to a
reference method per task, and the Pareto frontier of score against a cost.

Significance uses the rule of ``adalink experiment`` (:func:`adalink.stats.difference`, the rule the
verdicts of :mod:`adalink.experiments.verdicts` read): a difference of means is real when Welch's t-test, at its
degrees of freedom and with each side's test-set sampling variance added, rejects "no difference" at 95 % (its 95 %
interval excludes 0); with one seed on either side there is no spread, so nothing is called real. Why the test-set
term is added as a bound rather than bootstrapped: :mod:`adalink.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..stats import Difference, difference, p_text
from .aggregate import Cell, MethodRow
from .tables import model_name

__all__ = [
    "BETTER",
    "COSTS",
    "NO_DIFFERENCE",
    "NO_SPREAD",
    "VERDICTS",
    "WORSE",
    "Cost",
    "Panel",
    "Versus",
    "panels",
    "pareto_front",
    "versus",
]

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no difference shown"
NO_SPREAD = "one seed: no spread"
VERDICTS = (BETTER, WORSE, NO_DIFFERENCE, NO_SPREAD)


@dataclass(frozen=True)
class Versus:
    """One method's score on one task against a reference method's, at each one's chosen learning rate."""

    model: str
    task: str
    method: str
    reference: str  # the method compared against (adalink, full)
    difference: Difference  # mean(method) - mean(reference), its standard error and Welch's df

    @property
    def verdict(self) -> str:
        d = self.difference
        if d.real:
            return BETTER if d.delta > 0 else WORSE
        return NO_DIFFERENCE if d.known else NO_SPREAD

    def text(self) -> str:
        """``"+3.1 ± 2.6 (p = 0.031): better"`` in accuracy points (± the 95 % interval's half-width, Welch's p),
        ``"+3.1 (one seed: no spread)"`` without a spread."""
        d = self.difference
        if not d.known:
            return f"{100 * d.delta:+.1f} ({NO_SPREAD})"
        verdict = f"**{self.verdict}**" if self.verdict in (BETTER, WORSE) else self.verdict
        return f"{100 * d.delta:+.1f} ± {100 * d.half_width:.1f} (p {p_text(d.p)}): {verdict}"


def versus(cells: list[Cell], reference: str) -> list[Versus]:
    """Every other method of each (profile, model, task) against ``reference`` there; none where it has no cell."""
    refs = {(c.profile, c.model, c.task): c for c in cells if c.method == reference}
    out = []
    for cell in cells:
        ref = refs.get((cell.profile, cell.model, cell.task))
        if ref is None or cell.method == reference:
            continue
        out.append(Versus(cell.model, cell.task, cell.method, reference, difference(cell.summary, ref.summary)))
    return out


def pareto_front(points: Mapping[str, tuple[float, float]], lower_cost_is_better: bool = True) -> list[str]:
    """The names of ``points`` (name -> (score, cost)) that no other point dominates, sorted by cost.

    A point is dominated when another has a score at least as high and a cost at least as good (lower, or higher
    where ``lower_cost_is_better`` is False, as for throughput), and is strictly better in one of the two.
    """
    sign = 1.0 if lower_cost_is_better else -1.0
    ranked = {name: (score, sign * cost) for name, (score, cost) in points.items()}

    def dominated(name: str) -> bool:
        score, cost = ranked[name]
        return any(
            s >= score and c <= cost and (s > score or c < cost) for other, (s, c) in ranked.items() if other != name
        )

    return sorted((name for name in ranked if not dominated(name)), key=lambda name: (ranked[name][1], name))


@dataclass(frozen=True)
class Cost:
    """A cost the Pareto frontier weighs against the score."""

    key: str  # a key of aggregate.COST_KEYS and MethodRow.stats
    label: str  # axis label
    lower_is_better: bool  # parameters and memory: lower; throughput: higher
    log: bool  # log axis
    scale: float  # displayed value = value / scale
    name: str  # short name, in file names and the report


COSTS = (
    Cost("trainable_params", "trainable parameters (log; the new head not counted)", True, True, 1.0, "parameters"),
    Cost("memory_bytes", "peak training memory (MB above the pre-model baseline)", True, False, 2**20, "memory"),
    Cost("train_tps", "training tokens / s (higher is better)", False, False, 1.0, "train speed"),
)


@dataclass(frozen=True)
class Panel:
    """Score against one cost for the methods of one (model, task), or of the mean over tasks."""

    title: str  # "minilm, tweets"
    points: dict[str, tuple[float, float]]  # method -> (mean score, mean cost)
    errors: dict[str, float]  # method -> score std over seeds (Euclidean mean over tasks for the mean panel)
    front: list[str]  # the methods on the Pareto frontier, by cost


def panels(cells: list[Cell], rows: list[MethodRow], cost: Cost, first_task: str | None = None) -> list[Panel]:
    """One panel per (model, task) of one profile's cells (``first_task`` first, then by name), then one per model
    for the mean over tasks (methods with a cell on every task only) where there are several tasks."""
    out = []
    models = sorted({c.model for c in cells})
    for model in models:
        tasks = sorted({c.task for c in cells if c.model == model}, key=lambda t: (t != first_task, t))
        for task in tasks:
            mine = [c for c in cells if (c.model, c.task) == (model, task)]
            values = {c.method: (c.score, c.stat(cost.key), c.score_std) for c in mine}
            out.append(_panel(f"{model_name(model)}, {task}", values, cost))
        if len(tasks) > 1:
            whole = [r for r in rows if r.model == model and len(r.cells) == len(tasks)]
            values = {r.method: (r.stats["score"], r.stats[cost.key], r.stats["score_std"]) for r in whole}
            out.append(_panel(f"{model_name(model)}, mean over {len(tasks)} tasks", values, cost))
    return out


def _panel(title: str, values: Mapping[str, tuple[float, float | None, float]], cost: Cost) -> Panel:
    points = {m: (score, c) for m, (score, c, _) in values.items() if c is not None}
    errors = {m: std for m, (_, c, std) in values.items() if c is not None}
    return Panel(title, points, errors, pareto_front(points, cost.lower_is_better))
