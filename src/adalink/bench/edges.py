"""Methods whose learning rate was chosen at the edge of their sweep, and probes beyond it.

A sweep over 0.3x, 1x and 3x a method's default that picks 3x says the best rate may be higher: the method may be
under-tuned at the profile's budget, so a verdict that it is worse than another method is weak evidence. A probe is
a run of the same profile with the first seed at a rate beyond the edge, kept apart from the planned grid
(``adalink bench --lrs 3x,10x --seeds 0 --out <results>/probes/<profile>``, or ``--lrs 0.3x,0.1x`` below a lowest
edge: the edge rate is listed too, so that the runs are a sweep and score validation; copy the grid's edge run there
first and it is not run again). Probes do not change the chosen rate or the score tables: they say whether the method
would have chosen a rate outside the sweep, and by how much on validation.
"""

from __future__ import annotations

from typing import Any

from .aggregate import Cell, variant_label
from .tables import method_label, model_name, num, rate_text, table

__all__ = ["edges_text", "sweep_edges"]


def sweep_edges(cells: list[Cell]) -> dict[tuple[str, str], str]:
    """(model, method) -> "highest" or "lowest" where a finished sweep (every rate scored) chose its edge rate: the
    best rate may then lie outside the sweep, and the tasks that re-use the rate inherit the doubt."""
    edges = {}
    for c in filter(_finished_sweep, cells):
        rates = sorted(c.sweep)
        if abs(c.lr - rates[-1]) <= 1e-9 * c.lr:
            edges[(c.model, c.method)] = "highest"
        elif abs(c.lr - rates[0]) <= 1e-9 * c.lr:
            edges[(c.model, c.method)] = "lowest"
    return edges


def edges_text(edges: dict[tuple[str, str], str], cells: list[Cell], probes: list[dict[str, Any]]) -> str:
    """Which methods chose a rate at the edge of their sweep, what that means for their verdicts, and the probes
    beyond the edge where there are any."""
    finished = {(c.model, c.method) for c in cells if _finished_sweep(c)}
    lines = []
    for side in ("highest", "lowest"):
        names = sorted(
            f"{method_label(method)} ({model_name(model)})" for (model, method), e in edges.items() if e == side
        )
        if names:
            lines.append(
                f"{len(names)} of {len(finished)} finished sweeps chose their {side} rate: {', '.join(names)}."
            )
    text = (
        "**At the edge of the sweep.** "
        + " ".join(lines)
        + " For these methods the best rate may lie outside the sweep, so their scores may be below what they can"
        " reach at this budget: a verdict that one of them is worse than another method is weaker evidence than a"
        " verdict that it is better. Their rows in the score tables say so (`highest swept`, `lowest swept`)."
    )
    probe_table = _probe_table(edges, cells, probes)
    return text if not probe_table else f"{text}\n\n{probe_table}"


def _probe_table(edges: dict[tuple[str, str], str], cells: list[Cell], probes: list[dict[str, Any]]) -> str:
    """Validation accuracy of the first seed at the chosen (edge) rate beside the probes beyond it."""
    swept = {(c.model, c.method): c for c in cells if (c.model, c.method) in edges and c.sweep}
    by_method: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for probe in probes:
        spec = probe["spec"]
        key = (spec["model"], variant_label(spec["method"], spec.get("method_config")))  # as the cells name it
        scored = probe.get("status") == "ok" and probe.get("validation_score") is not None
        if scored and key in swept and spec["task"] == swept[key].task and _beyond(swept[key], edges[key], spec["lr"]):
            by_method.setdefault(key, []).append(probe)
    if not by_method:
        return ""
    body = []
    for key in sorted(by_method):
        cell = swept[key]
        edge = cell.sweep[cell.lr]
        assert edge is not None  # a finished sweep: every rate scored
        beyond = sorted(by_method[key], key=lambda d: d["spec"]["lr"])
        best = max(beyond, key=lambda d: d["validation_score"])
        gain = 100 * (best["validation_score"] - edge)
        direction = "higher" if edges[key] == "highest" else "lower"
        verdict = (
            f"{direction} is better: {gain:+.1f} at {rate_text(best['spec']['lr'])}" if gain > 0 else "the edge holds"
        )
        probed = ", ".join(f"{100 * d['validation_score']:.2f} at {rate_text(d['spec']['lr'])}" for d in beyond)
        test = ", ".join(f"{num(100 * d['score'], 2)}" for d in beyond)
        body.append([method_label(key[1]), f"{100 * edge:.2f} at {rate_text(cell.lr)}", probed, test, verdict])
    first = next(iter(swept.values()))  # every cell here is of one profile and model, swept on one task
    task, profile = first.task, first.profile
    rates = ",".join(sorted({f"{d['spec']['lr']:g}" for key in by_method for d in by_method[key]}, key=float))
    methods = ",".join(sorted({swept[key].base_method for key in by_method}))
    intro = (
        f"Probes beyond the edge (first seed, {task}; not part of the planned grid, so the chosen rates and the tables "
        "above are unchanged): validation accuracy at the chosen rate and beyond it. Made with `adalink bench "
        f"--profile {profile} --tasks {task} --methods {methods} --lrs <edge>,<rate> --seeds 0 --out "
        f"<results>/probes/{profile}` at the rates {rates}."
    )
    header = ["Method", "Chosen (validation)", "Beyond (validation)", "Beyond (test)", "Verdict"]
    return intro + "\n\n" + table(header, body)


def _finished_sweep(cell: Cell) -> bool:
    """Whether ``cell`` has a sweep of at least two rates, every one scored."""
    return len(cell.sweep) > 1 and None not in cell.sweep.values()


def _beyond(cell: Cell, side: str, lr: float) -> bool:
    """Whether ``lr`` lies outside ``cell``'s sweep on its edge ``side`` (the edge run itself is not a probe)."""
    rates = sorted(cell.sweep)
    return lr > rates[-1] * (1 + 1e-9) if side == "highest" else lr < rates[0] * (1 - 1e-9)
