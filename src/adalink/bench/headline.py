"""The section of BENCHMARKS.md for a profile that sweeps the learning rate and runs several seeds (``standard``,
``paper``): how much of the planned grid is finished, mean ± std per method and task at the chosen rate with the
sweep behind it, which differences to AdaLink and to full tuning are real (Welch's t-test at 95 %, the test set's
sampling error included), the Table 5 layout, the Pareto frontiers, and our efficiency figures beside the survey's
Table 5."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from .aggregate import Cell, MethodRow
from .compare import COSTS, VERDICTS, Versus, panels, versus
from .edges import edges_text, sweep_edges
from .grid import resolve_lr
from .plots import pareto_file, write_pareto_plots
from .profiles import PROFILES
from .reproduce import REPRODUCTIONS, CellProgress, progress
from .survey_table5 import COLUMNS, SIZES, TABLE5, sentence, survey_value
from .tables import (
    efficiency_table,
    method_label,
    model_name,
    num,
    profile_text,
    rate_text,
    score_text,
    source_text,
    table,
)

__all__ = ["REFERENCES", "headline_parts", "lead_parts"]

REFERENCES = ("adalink", "full")  # every method's score is compared with these two


def headline_parts(
    profile: str,
    documents: list[dict[str, Any]],
    cells: list[Cell],
    rows: list[MethodRow],
    report: Path,
    plots: Path,
    probes: list[dict[str, Any]] | None = None,
) -> list[str]:
    """Markdown blocks of one multi-seed profile (its runs, cells and rows only), from how much of its grid is
    finished to its efficiency beside the survey's; draws its Pareto plots under ``plots``. ``probes``: runs beyond
    the sweep's edge (:mod:`.edges`)."""
    states = _progress(profile, documents)
    edges = sweep_edges(cells)
    first = PROFILES[profile].sweep_task
    tasks = sorted({c.task for c in cells}, key=lambda t: (t != first, t))
    write_pareto_plots(cells, rows, plots, profile, first)
    parts = [_progress_text(states), ""] if states else []
    parts += [*lead_parts(profile, documents), profile_text([d for d in documents if d.get("status") == "ok"]), ""]
    parts += ["### Scores: mean ± std over seeds at the chosen rate, and which differences are real", ""]
    parts += [_significance_intro(), ""]
    for model in sorted({c.model for c in cells}):
        for task in tasks:
            mine = [c for c in cells if (c.model, c.task) == (model, task)]
            if mine:
                parts += [_scores_block(model, task, mine, cells, states, edges), ""]
    parts += ["### Learning-rate sweep (validation accuracy of the first seed)", "", _sweep_table(profile, cells), ""]
    if edges:
        parts += [edges_text(edges, cells, probes or []), ""]
    parts += ["### Efficiency and performance (layout of the survey's Table 5; full tuning = 100)", ""]
    parts += [efficiency_table(rows, tasks), ""]
    parts += ["### Pareto frontiers", "", _frontier_text(profile, cells, rows, report, plots), ""]
    parts += ["### Beside the survey's Table 5 (T5 on an A100; full tuning = 100)", "", _survey_text(rows), ""]
    return parts


def lead_parts(profile: str, documents: list[dict[str, Any]]) -> list[str]:
    """The command that reproduces the profile's grid and the commits its runs were made from."""
    parts = [f"Reproduce: `{REPRODUCTIONS[profile].command}`", ""] if profile in REPRODUCTIONS else []
    return [*parts, f"Runs made from: {source_text(documents)}.", ""]


def _progress(profile: str, documents: list[dict[str, Any]]) -> dict[tuple[str, str, str], CellProgress]:
    reproduction = REPRODUCTIONS.get(profile)
    if reproduction is None:
        return {}
    return {(p.model, p.task, p.method): p for p in progress(reproduction.plan(), documents)}


def _progress_text(states: dict[tuple[str, str, str], CellProgress]) -> str:
    """The line that says how much of the plan is finished, and a table of the cells that are not."""
    cells = list(states.values())
    planned, finished = sum(p.planned for p in cells), sum(p.finished for p in cells)
    failed = sum(p.failed for p in cells)
    complete = sum(p.complete for p in cells)
    if complete == len(cells):
        return f"**Complete: all {planned} planned runs are finished ({failed} failed).**"
    head = (
        f"**Partial results: {finished} of {planned} planned runs are finished ({failed} failed); {complete} of "
        f"{len(cells)} (task, method) cells complete.** Every table below shows what is finished so far; a "
        "cell's mean and spread can still move, and a rate chosen on an unfinished sweep is provisional."
    )
    by_task: dict[tuple[str, str], list[CellProgress]] = defaultdict(list)
    for p in cells:
        by_task[(p.model, p.task)].append(p)
    body = []
    for (model, task), mine in by_task.items():
        done = [p.method for p in mine if p.complete]
        running = [f"{p.method} ({p.missing})" for p in mine if p.started and not p.complete]
        waiting = [p.method for p in mine if not p.started]
        body.append(
            [
                f"{model_name(model)}, {task}",
                _names(done, len(mine)),
                ", ".join(running) or "—",
                _names(waiting, len(mine)),
            ]
        )
    return head + "\n\n" + table(["Cell", "Complete", "In progress (finished so far)", "Not started"], body)


def _names(methods: list[str], total: int) -> str:
    if not methods:
        return "—"
    if len(methods) == total:
        return f"all {total} methods"
    return f"{', '.join(methods)} ({len(methods)})"


def _significance_intro() -> str:
    return (
        "Test accuracy in points. A difference to AdaLink or to full tuning is called real (**better**, **worse**) "
        "when Welch's t-test rejects no difference at 95 %, at its Welch–Satterthwaite degrees of freedom (about 2 "
        "to 4 with 3 seeds a side, where the critical t is 2.8 to 4.3), with each side's test-set sampling error "
        "added to the spread over seeds: every seed is scored on the same test examples, so the mean carries their "
        "binomial error `p(1 - p)/N` once (bbc: N = 218, one example = 0.46 points). The runs keep no per-example "
        "predictions, so the two sides' test-set errors are taken as independent, a bound that makes the test "
        "conservative: a difference called real is real, and one not shown may be real. The rule is "
        "`adalink.stats.difference`, shared with `adalink experiment`. Each cell shows the difference "
        "in points ± the half-width of its 95 % interval, Welch's p and the verdict; with one seed on either side "
        "there is no spread and nothing is called real."
    )


def _scores_block(
    model: str,
    task: str,
    mine: list[Cell],
    cells: list[Cell],
    states: dict[tuple[str, str, str], CellProgress],
    edges: dict[tuple[str, str], str],
) -> str:
    """One task's table: every method by mean score, its rate, seeds, and the verdicts against the references."""
    against = {
        ref: {v.method: v for v in versus(cells, ref) if (v.model, v.task) == (model, task)} for ref in REFERENCES
    }
    baseline = next((c.majority_baseline for c in mine if c.majority_baseline is not None), None)
    majority = num(baseline and 100 * baseline, 2)
    head = f"**{task}** ({model_name(model)}; always answering the majority class scores {majority})"
    body = []
    for c in sorted(mine, key=lambda c: -c.score):
        state = states.get((c.model, c.task, c.method))
        lr = rate_text(c.lr) + (" (provisional)" if state and state.missing.startswith("sweep") else "")
        lr += f" ({edges[(c.model, c.method)]} swept)" if (c.model, c.method) in edges else ""
        row = [method_label(c.method), lr, str(len(c.runs)), score_text(c.score, c.score_std, len(c.runs))]
        row += [against[ref][c.method].text() if c.method in against[ref] else "—" for ref in REFERENCES]
        body.append(row)
    header = ["Method", "Rate", "Seeds", "Accuracy", "vs AdaLink", "vs full tuning"]
    counts = [_counts(list(against[ref].values()), ref) for ref in REFERENCES if against[ref]]
    return "\n\n".join([head, table(header, body), *counts])


def _counts(comparisons: list[Versus], reference: str) -> str:
    groups = {verdict: sorted(v.method for v in comparisons if v.verdict == verdict) for verdict in VERDICTS}
    name = "AdaLink" if reference == "adalink" else "full tuning" if reference == "full" else reference
    listed = "; ".join(f"{verdict} ({len(m)}): {', '.join(m)}" for verdict, m in groups.items() if m)
    return f"Against {name}: {listed}."


def _sweep_table(profile: str, cells: list[Cell]) -> str:
    """Validation accuracy at each rate of the sweep, the chosen rate in bold, per task that sweeps."""
    tokens = list(PROFILES[profile].lrs)
    swept = [c for c in cells if len(c.sweep) > 1 or any(v is not None for v in c.sweep.values())]
    if not swept:
        return "_No sweep finished yet._"
    shared = PROFILES[profile].sweep_task
    body = []
    for c in sorted(swept, key=lambda c: (c.model, c.task, c.method)):
        row = [model_name(c.model), c.task, method_label(c.method)]
        rates = [resolve_lr(token, c.base_method) for token in tokens]
        if c.method != c.base_method and len(c.sweep) == len(tokens):  # another config: its sweep was around its rate
            rates = sorted(c.sweep, reverse=True) if rates[0] > rates[-1] else sorted(c.sweep)
        for lr in rates:
            score = next((v for rate, v in c.sweep.items() if abs(rate - lr) <= 1e-9 * lr), None)
            text = "—" if score is None else f"{100 * score:.2f} at {rate_text(lr)}"
            row.append(f"**{text}**" if score is not None and abs(c.lr - lr) <= 1e-9 * lr else text)
        body.append(row)
    note = f" The other tasks re-use the rate chosen on {shared}." if shared else ""
    intro = (
        f"Each method's rate is swept over {', '.join(tokens)} (x = its own default rate) with the first seed; the "
        f"rate with the best validation accuracy (bold; ties: the smaller rate) is then run with the other seeds.{note}"
    )
    return intro + "\n\n" + table(["Model", "Task", "Method", *tokens], body)


def _frontier_text(profile: str, cells: list[Cell], rows: list[MethodRow], report: Path, plots: Path) -> str:
    rule = (
        "A method is on the frontier when no other method scores at least as high at a cost at least as good "
        "(fewer parameters, less memory, more training tokens/s), better in one of the two. Mean scores are "
        "compared as they are: a frontier method may not differ really from the one below it."
    )
    body = []
    for cost in COSTS:
        for panel in panels(cells, rows, cost, PROFILES[profile].sweep_task):
            body.append([cost.name, panel.title, ", ".join(method_label(m) for m in panel.front) or "—"])
    images = [
        f"![pareto {cost.name}]({os.path.relpath(pareto_file(plots, profile, cost.name), report.parent)})"
        for cost in COSTS
        if pareto_file(plots, profile, cost.name).is_file()
    ]
    return "\n\n".join([rule, table(["Cost", "Methods of", "On the frontier (by cost)"], body), "\n".join(images)])


def _survey_text(rows: list[MethodRow]) -> str:
    """Per model, one table per column: our figure beside the survey's at each T5 size, then the generated sentence."""
    parts = [
        "Methods in common with the survey (AdaLink, BitFit and DoRA are not in its Table 5). Our % of trainable "
        "parameters is of the base model's parameters, as the survey counts it; the survey's memory is made relative "
        "to its full tuning's. Our figures are CPU runs of a small model made one after another (see how each column "
        "is measured); the sentence under each table is generated from the numbers."
    ]
    for model in sorted({r.model for r in rows}):
        mine = [r for r in rows if r.model == model]
        common = [r for r in mine if r.method in TABLE5["T5-Large"] and r.method != "full"]
        full = next((r for r in mine if r.method == "full"), None)
        if not common or full is None:
            parts.append(f"_{model_name(model)}: needs full tuning and one of the survey's methods._")
            continue
        for column in COLUMNS:
            ours = _ours(common, column.key, full.stats["trainable_params"])
            digits = 3 if column.key == "params_pct" else 1
            body = [
                [r.method, num(ours.get(r.method), digits)]
                + [num(survey_value(size, r.method, column.key), digits) for size in SIZES]
                for r in common
            ]
            header = ["Method", f"ours ({model_name(model)})", *SIZES]
            parts += [f"**{column.title}**", table(header, body), sentence(column, ours)]
    return "\n\n".join(parts)


def _ours(rows: list[MethodRow], key: str, base_params: float) -> dict[str, float]:
    """Our figure of one column per method; the share of parameters is of the base model (full tuning's count)."""
    out = {}
    for r in rows:
        value = 100 * r.stats["trainable_params"] / base_params if key == "params_pct" else r.relative.get(key)
        if value is not None:
            out[r.method] = value
    return out
