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

__all__ = ["label_points", "pareto_file", "write_pareto_plots", "write_plots"]

Label = tuple[str, float, float, str]  # (text, x, y in data coordinates, font weight)
# Where a label may sit beside its point, in points (dx, dy, horizontal alignment), tried in this order.
_SPOTS = [(4, 4, "left"), (4, -11, "left"), (-4, 4, "right"), (-4, -11, "right")]


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

    labels: dict[int, list[Label]] = defaultdict(list)  # per panel (axes id): the method names beside the points

    def figure(name: str, draw: _Draw) -> None:
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
        for ax, (title, panel) in zip(axes[0], panels.items(), strict=True):
            draw(ax, panel)
            ax.set_title(title)
        fig.tight_layout()
        for ax in axes[0]:
            label_points(ax, labels.pop(id(ax), []))
        path = directory / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def scatter(ax: Axes, panel: list[MethodRow]) -> None:
        for row in panel:
            x = max(row.stats["trainable_params"] or 1, 1)
            ax.errorbar(x, 100 * row.stats["score"], yerr=100 * row.stats["score_std"], fmt="o", capsize=3)
            labels[id(ax)].append((row.method, x, 100 * row.stats["score"], "normal"))
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters (log; classification head not counted)")
        ax.set_ylabel("score (mean over tasks, %; axis not from 0)")
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
        labels = [_pareto_panel(ax, panel, cost) for ax, panel in zip(axes[0], drawn, strict=True)]
        fig.suptitle(f"profile {profile}: score against {cost.name} (filled: on the Pareto frontier)")
        fig.tight_layout()
        for ax, panel_labels in zip(axes[0], labels, strict=True):
            label_points(ax, panel_labels)  # once the layout is final: labels are placed in its pixels
        path = pareto_file(directory, profile, cost.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _pareto_panel(ax: Axes, panel: Panel, cost: Cost) -> list[Label]:
    """Draw one panel's points, error bars and frontier; returns the labels to place once the layout is final."""
    labels = []
    for method, (score, value) in panel.points.items():
        on = method in panel.front
        x, y = value / cost.scale, 100 * score
        ax.errorbar(x, y, yerr=100 * panel.errors[method], fmt="o", capsize=3, color="C3" if on else "0.55",
                    mfc="C3" if on else "white", zorder=3 if on else 2)  # fmt: skip
        labels.append((method, x, y, "bold" if method == "adalink" else "normal"))
    front = [(panel.points[m][1] / cost.scale, 100 * panel.points[m][0]) for m in panel.front]
    if len(front) > 1:  # sorted from the best cost: the score rises as the cost worsens
        ax.step([x for x, _ in front], [y for _, y in front], where="post", color="C3", alpha=0.6)
    if cost.log:
        ax.set_xscale("log")
    ax.set_xlabel(cost.label)
    ax.set_ylabel("test accuracy (%, mean over seeds; axis not from 0)")
    ax.set_title(panel.title)
    ax.grid(alpha=0.3)
    return labels


def label_points(ax: Axes, labels: list[Label], fontsize: float = 8) -> None:
    """Write each label beside its point where it overlaps no label already written: the first free spot of
    :data:`_SPOTS`, else the nearest free height above or below, joined to its point by a thin line.

    Deterministic (top to bottom, then left to right) and measured in the figure's pixels, so call it after
    ``tight_layout``: a later change of layout would move the points under their labels."""
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's canvas has one
    spots = [*_SPOTS, *((4, sign * step, "left") for step in range(18, 200, 7) for sign in (1, -1))]
    taken: list = []  # the boxes of the labels written, in pixels
    for text, x, y, weight in sorted(labels, key=lambda label: (-label[2], label[1])):
        for number, (dx, dy, align) in enumerate(spots):
            far = abs(dy) > 11
            note = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                ha=align,
                va="bottom" if dy > 0 else "top" if far else "baseline",
                fontsize=fontsize,
                fontweight=weight,
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if far else None,
            )
            box = note.get_window_extent(renderer).padded(2)  # a gap, so that two labels do not read as one
            if number == len(spots) - 1 or not any(box.overlaps(other) for other in taken):
                taken.append(box)  # free (or no spot is: the farthest one stays)
                break
            note.remove()
