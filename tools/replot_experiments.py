"""Redraw every experiment chart from its committed summary (run from the repository root).

Each ``experiments/results/**/<NAME>.json`` written by ``adalink experiment NAME`` (its conditions' mean, std, n and
per-seed scores) is drawn again, beside it as ``<NAME>.png``, by the plotting code the experiments use now
(:func:`adalink.experiments.report.plot`: bars from 0, a line chart's axis labelled where it does not start at 0).
Kept sub-folders (``60steps/``, ``full-head-at-body-lr/``, ...) hold summaries of runs whose files are not all kept,
so ``adalink experiment NAME --report-only`` cannot redraw them; their summaries can. A condition in a summary that
the experiment no longer defines is reported, not drawn.

    PYTHONPATH=src python tools/replot_experiments.py [--results experiments/results]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from adalink.experiments.report import plot
from adalink.experiments.tables import EXPERIMENTS, build
from adalink.stats import Summary


def table_from_summary(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``table`` :func:`plot` draws (condition label -> summary and per-seed scores), from a summary JSON."""
    return {
        label: {
            "summary": Summary(row["mean"], row["std"], row["n"]),
            "scores": {int(seed): score for seed, score in row["scores"].items()},
        }
        for label, row in document["conditions"].items()
    }


def replot(path: Path) -> list[str]:
    """Draw ``path``'s chart again; the labels of its conditions that the experiment does not define."""
    document = json.loads(path.read_text())
    experiment = build(document["experiment"])
    table = table_from_summary(document)
    plot(path.with_suffix(".png"), experiment, table)
    return sorted(set(table) - {c.label for c in experiment.conditions})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="experiments/results")
    args = parser.parse_args(argv)
    found = Path(args.results).rglob("*.json")
    summaries = sorted(p for p in found if p.stem in EXPERIMENTS and p.parent.name != "runs")
    for path in summaries:
        dropped = replot(path)
        note = f" (not drawn, not defined by the experiment: {', '.join(dropped)})" if dropped else ""
        print(f"{path.with_suffix('.png')}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
