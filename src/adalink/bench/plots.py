"""PNG plots of the aggregated bench: score vs trainable parameters (log axis), memory, throughput, and the Pareto
frontiers of score against each cost (:data:`.compare.COSTS`) for a profile's methods."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from .aggregate import Cell, MethodRow
from .compare import COSTS, Cost, Panel, panels

if TYPE_CHECKING:
    from matplotlib.axes import Axes

_Draw = Callable[["Axes", list[MethodRow]], None]  # draws one (profile, model) panel of a figure

__all__ = ["pareto_file", "write_pareto_plots", "write_plots"]


def _pyplot() -> ModuleType:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(rows: list[MethodRow], directory: Path) -> list[Path]:
    """One PNG per figure, one panel per (profile, model); returns the files written."""
    plt = _pyplot()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    panels: dict[str, list[MethodRow]] = defaultdict(list)
    for row in rows:
        model = Path(row.model).name if os.sep in row.model else row.model
        panels[f"{model} ({row.profile})"].append(row)
    if not panels:
        return []
    written = []

    def figure(name: str, draw: _Draw) -> None:
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
        for ax, (title, panel) in zip(axes[0], panels.items(), strict=True):
            draw(ax, panel)
            ax.set_title(title)
        fig.tight_layout()
        path = directory / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def scatter(ax: Axes, panel: list[MethodRow]) -> None:
        for row in panel:
            x = max(row.stats["trainable_params"] or 1, 1)
            ax.errorbar(x, 100 * row.stats["score"], yerr=100 * row.stats["score_std"], fmt="o", capsize=3)
            ax.annotate(row.method, (x, 100 * row.stats["score"]), textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log; classification head not counted)")
        ax.set_ylabel("score (mean over tasks, %)")
        ax.grid(alpha=0.3)

    def bars(keys: list[tuple[str, str]], ylabel: str, scale: float, relative: bool = False) -> _Draw:
        def draw(ax: Axes, panel: list[MethodRow]) -> None:
            width = 0.8 / len(keys)
            for i, (key, label) in enumerate(keys):
                values = [(row.relative if relative else row.stats).get(key) or 0 for row in panel]
                values = [v / scale for v in values]
                ax.bar([j + i * width for j in range(len(panel))], values, width, label=label)
            ax.set_xticks([j + width * (len(keys) - 1) / 2 for j in range(len(panel))])
            ax.set_xticklabels([row.method for row in panel], rotation=45, ha="right")
            ax.set_ylabel(ylabel)
            if len(keys) > 1:
                ax.legend()
            ax.grid(alpha=0.3, axis="y")

        return draw

    figure("score_vs_params.png", scatter)
    figure("peak_memory.png", bars([("memory_bytes", "training memory")], "MB", 2**20))
    figure(
        "throughput.png",
        bars(
            [("train_tps", "train"), ("infer_tps", "inference (unmerged)"), ("infer_merged_tps", "inference (merged)")],
            "tokens / s relative to full tuning (= 100)",
            1.0,
            relative=True,
        ),
    )
    return written


def pareto_file(directory: Path, profile: str, cost_name: str) -> Path:
    return Path(directory) / f"pareto_{profile}_{cost_name.replace(' ', '_')}.png"


def write_pareto_plots(
    cells: list[Cell], rows: list[MethodRow], directory: Path, profile: str, first_task: str | None = None
) -> list[Path]:
    """One PNG per cost for one profile: score against the cost, one panel per task (``first_task`` first) and the
    mean over tasks, the frontier's methods filled and joined by a step line; returns the files written."""
    plt = _pyplot()
    written = []
    for cost in COSTS:
        drawn = [p for p in panels(cells, rows, cost, first_task) if p.points]
        if not drawn:
            continue
        fig, axes = plt.subplots(1, len(drawn), figsize=(6.5 * len(drawn), 5), squeeze=False)
        for ax, panel in zip(axes[0], drawn, strict=True):
            _pareto_panel(ax, panel, cost)
        fig.suptitle(f"profile {profile}: score against {cost.name} (filled: on the Pareto frontier)")
        fig.tight_layout()
        path = pareto_file(directory, profile, cost.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _pareto_panel(ax: Axes, panel: Panel, cost: Cost) -> None:
    for method, (score, value) in panel.points.items():
        on = method in panel.front
        x, y = value / cost.scale, 100 * score
        ax.errorbar(x, y, yerr=100 * panel.errors[method], fmt="o", capsize=3, color="C3" if on else "0.55",
                    mfc="C3" if on else "white", zorder=3 if on else 2)  # fmt: skip
        weight = "bold" if method == "adalink" else "normal"
        ax.annotate(method, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8, fontweight=weight)
    front = [(panel.points[m][1] / cost.scale, 100 * panel.points[m][0]) for m in panel.front]
    if len(front) > 1:  # sorted from the best cost: the score rises as the cost worsens
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="C3", alpha=0.6)
    if cost.log:
        ax.set_xscale("log")
    ax.set_xlabel(cost.label)
    ax.set_ylabel("test accuracy (%, mean over seeds)")
    ax.set_title(panel.title)
    ax.grid(alpha=0.3)
