"""Write an experiment's results: ``summary.json``, a PNG plot, and its markdown section in the report document.

The document (``docs/paper-reproduction.md``) keeps hand-written text around generated sections; each experiment's
section sits between ``<!-- experiment:NAME:begin -->`` and ``<!-- experiment:NAME:end -->`` and is replaced in
place (appended at the end the first time).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .experiment import Experiment
from .runner import STAGE1_FILE, summaries
from .verdicts import Verdict

__all__ = ["glance", "markdown", "plot", "update_document", "write_summary"]

_UNRECORDED_MARK = "†"


def _params(row: dict[str, Any]) -> str:
    counts = [v for v in row["trainable_params"].values() if v is not None]
    if not counts:
        return ""
    return " + ".join(f"{v:,}" for v in counts)


def markdown(
    experiment: Experiment,
    table: dict[str, dict[str, Any]],
    verdicts: list[Verdict],
    seeds: Sequence[int],
    stage1: dict[str, Any] | None = None,
) -> str:
    """The experiment's section: protocol, table (ours beside the paper's), verdicts and commands.

    ``stage1``: the stage-1 VLM's ``pretraining.json`` (:func:`read_stage1`), which fills the easy-VQA note.
    """
    tasks = sorted({t for row in table.values() for t in row["per_task"]})
    multi = len(tasks) > 1
    lines = [
        f"### {experiment.title}",
        "",
        f"*Paper*: {experiment.paper_table}. *Ours*: {experiment.protocol}",
        "",
        f"Seeds requested: {', '.join(map(str, seeds))}; accuracy in points (× 100), mean ± sample std over the seeds "
        "that finished (n).",
        "",
    ]
    header = ["condition", "trainable params (w/o head)", "ours", *(f"ours: {t}" for t in tasks if multi), "paper"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for condition in experiment.conditions:
        row = table.get(condition.label)
        if row is None:
            cells = [condition.label, "", "not run", *("" for _ in tasks if multi), condition.paper]
        else:
            per_task = [row["per_task"][t].points() if t in row["per_task"] else "" for t in tasks] if multi else []
            label = condition.label + (f" {_UNRECORDED_MARK}" if row.get("unrecorded_runs") else "")
            cells = [label, _params(row), row["summary"].points(), *per_task, condition.paper]
        lines.append("| " + " | ".join(cells) + " |")
    lines += _unrecorded_note(table)
    baselines = {t: v for row in table.values() for t, v in row["majority_baseline"].items()}
    if baselines:
        lines += ["", "Majority-answer baseline: " + ", ".join(f"{t} {100 * v:.1f}" for t, v in baselines.items())]
    if experiment.note:
        lines += ["", experiment.note.format(stage1=stage1_summary(stage1))]
    lines += ["", "| claim | verdict | why |", "|---|---|---|"]
    lines += [f"| {v.claim} | **{v.verdict}** | {v.reason} |" for v in verdicts]
    lines += ["", f"![{experiment.name}](../experiments/results/{experiment.name}.png)", ""]
    lines += [f"Reproduce: `adalink experiment {experiment.name} --seeds {','.join(map(str, seeds))}`. Runs:", ""]
    lines += ["```"]
    first_seed = min(seeds)
    for condition in experiment.conditions:
        lines += [spec.command(first_seed) for spec in condition.specs]
    lines += ["```", ""]
    return "\n".join(lines)


def _unrecorded_note(table: dict[str, dict[str, Any]]) -> list[str]:
    """A sentence under the table where some rows rest on run files that record no commit."""
    unrecorded = sum(row.get("unrecorded_runs", 0) for row in table.values())
    if not unrecorded:
        return []
    runs = sum(len(row.get("commands", [])) for row in table.values())
    return [
        "",
        f"{_UNRECORDED_MARK} Rows so marked rest on run files that record no provenance (made before runs recorded "
        'their commit; marked `"provenance": "unrecorded"` in `experiments/results/runs/`): '
        f"{unrecorded} of {runs} runs of this table. Their command and settings are recorded, the code that ran them "
        "is not; re-running them may give other numbers.",
    ]


def read_stage1(results_dir: Path) -> dict[str, Any] | None:
    """The stage-1 VLM's metrics the runner copied next to the results (``STAGE1_FILE``), or None."""
    path = Path(results_dir) / STAGE1_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def stage1_summary(stage1: dict[str, Any] | None) -> str:
    """The held-out type's zero-shot accuracy of the stage-1 VLM, with how many questions it was measured on."""
    if stage1 is None:
        return f"not recorded (`{STAGE1_FILE}` is written by the first easy-VQA run of `adalink experiment`)"
    held_out = stage1["held_out_types"]
    per_type = stage1["eval_examples"] // max(1, len(stage1["accuracy"]) - 1)  # "all" is not a type
    scores = ", ".join(f"`{t}` {100 * stage1['accuracy'][t]:.1f}" for t in held_out)
    return f"{scores} on the first {per_type} test questions of each type (`{STAGE1_FILE}`)"


def glance(results_dir: Path, names: list[str]) -> str:
    """One table of every claim over the experiments ``names`` whose summary exists in ``results_dir``: the claim,
    the experiment, the verdict and the numbers that decided it, with the condition means beside it."""
    lines = ["| claim (paper) | experiment | our numbers (mean ± std, n) | verdict | why |", "|---|---|---|---|---|"]
    for name in names:
        path = results_dir / f"{name}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        numbers = "; ".join(
            f"{label}: {100 * row['mean']:.1f} ± {100 * row['std']:.1f} (n={row['n']})"
            if row["n"] > 1
            else f"{label}: {100 * row['mean']:.1f} (n=1)"
            for label, row in document["conditions"].items()
        )
        for verdict in document["verdicts"]:
            if verdict["verdict"] == "—":  # an observation of ours, not a claim of the paper
                continue
            lines.append(
                f"| {verdict['claim']} | `{name}` | {numbers or 'not run'} | **{verdict['verdict']}** | "
                f"{verdict['reason']} |"
            )
    return "\n".join(lines) + "\n"


def write_summary(
    path: Path, experiment: Experiment, table: dict[str, dict[str, Any]], verdicts: list[Verdict], seeds: Sequence[int]
) -> None:
    """``summary.json``: per condition the mean/std/n, per-task summaries and per-seed scores; the verdicts."""
    document = {
        "experiment": experiment.name,
        "seeds": list(seeds),
        "conditions": {
            label: {
                "mean": row["summary"].mean,
                "std": row["summary"].std,
                "n": row["summary"].n,
                "scores": {str(seed): score for seed, score in row["scores"].items()},
                "per_task": {t: vars(s) for t, s in row["per_task"].items()},
                "trainable_params": row["trainable_params"],
                "majority_baseline": row["majority_baseline"],
                "unrecorded_runs": row.get("unrecorded_runs", 0),
            }
            for label, row in table.items()
        },
        "verdicts": [vars(v) for v in verdicts],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def plot(path: Path, experiment: Experiment, table: dict[str, dict[str, Any]]) -> bool:
    """A bar chart (or, for sweeps, a line over ``Condition.x`` on a log axis) with ±std error bars and the
    individual seeds as dots; bars start at 0, a line's axis says where it does not. Returns False where matplotlib is
    missing or nothing finished."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    done = [c for c in experiment.conditions if c.label in table]
    if not done:
        return False
    stats = summaries(table)
    means = [100 * stats[c.label].mean for c in done]
    stds = [100 * stats[c.label].std for c in done]
    figure, axis = plt.subplots(figsize=(7, 4))
    if experiment.plot == "line":
        xs = [float(c.x) for c in done if c.x is not None]  # line plots: every condition has its x
        axis.errorbar(xs, means, yerr=stds, marker="o", capsize=4)
        for c in done:
            axis.scatter(
                [float(c.x or 0)] * len(table[c.label]["scores"]),
                [100 * s for s in table[c.label]["scores"].values()],
                color="gray",
                s=10,
                zorder=3,
            )
        axis.set_xscale("log", base=2)
        axis.set_xticks(xs, [f"{int(x)}" for x in xs])
        axis.set_xlabel(experiment.x_label)
    else:
        positions = range(len(done))
        axis.bar(positions, means, yerr=stds, capsize=4, color="#8fb3d9")
        for i, c in enumerate(done):
            seeds = list(table[c.label]["scores"].values())
            axis.scatter([i] * len(seeds), [100 * s for s in seeds], color="black", s=10, zorder=3)
        axis.set_xticks(list(positions), [c.label for c in done], rotation=15, ha="right", fontsize=8)
        axis.set_ylim(0.0, min(100.0, max(m + s for m, s in zip(means, stds, strict=True)) + 5))  # bars start at 0
    zoomed = axis.get_ylim()[0] > 0  # a line chart's axis is fitted to its points: say so where it is not from 0
    axis.set_ylabel("test accuracy (points" + ("; axis not from 0)" if zoomed else ")"))
    axis.set_title(experiment.title, fontsize=9)
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def update_document(path: Path, name: str, section: str) -> None:
    """Replace (or append) the generated section of experiment ``name`` in the markdown file ``path``."""
    begin, end = f"<!-- experiment:{name}:begin -->", f"<!-- experiment:{name}:end -->"
    block = f"{begin}\n{section.rstrip()}\n{end}"
    text = path.read_text() if path.is_file() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
