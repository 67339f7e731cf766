"""The report document: each experiment's section appended once, then replaced."""

import pytest

from adalink.experiments.experiment import Condition, Experiment
from adalink.experiments.report import plot, update_document
from adalink.stats import Summary


def test_update_document_appends_then_replaces(tmp_path):
    doc = tmp_path / "d.md"
    update_document(doc, "x", "first")
    update_document(doc, "y", "other")
    update_document(doc, "x", "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and text.index("second") < text.index("other")


def test_rows_resting_on_runs_without_provenance_are_marked_and_said_so():
    """The committed table5 runs: full tuning's single-task rows were re-made with their commit recorded, AdaLink's
    predate that (``"provenance": "unrecorded"`` in their files): only AdaLink's row carries the mark."""
    from pathlib import Path

    from adalink.experiments import build
    from adalink.experiments.report import markdown
    from adalink.experiments.runner import collect, provenance_unrecorded, summaries

    assert provenance_unrecorded({"provenance": "unrecorded", "environment": {"source": {"commit": "abc"}}})
    assert provenance_unrecorded({"command": "adalink train"})  # nothing recorded, not marked yet
    assert not provenance_unrecorded({"environment": {"source": {"commit": "e6a2622", "dirty": False}}})

    experiment = build("table5")
    table = collect(experiment, [0, 1, 2], Path(__file__).resolve().parents[2] / "experiments" / "results")
    assert table["FT single-task"]["unrecorded_runs"] == 0
    assert table["AdaLink single-task"]["unrecorded_runs"] == 6  # tweets and bbc, 3 seeds
    section = markdown(experiment, table, experiment.judge(summaries(table)), [0, 1, 2])
    assert "\n| FT single-task | " in section and "\n| AdaLink single-task † | " in section
    total = sum(row["unrecorded_runs"] for row in table.values())
    runs = sum(len(row["commands"]) for row in table.values())
    assert "† Rows so marked rest on run files that record no provenance" in section
    assert f"{total} of {runs} runs of this table" in section and 0 < total < runs


def test_a_bar_chart_starts_at_zero(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to look at its axis
    conditions = (Condition("FT", ()), Condition("AdaLink", ()))
    experiment = Experiment("t", "title", "Table 5", "protocol", conditions, judge=lambda _: [])
    table = {
        label: {"scores": {"0": score, "1": score + 0.01}, "summary": Summary(score + 0.005, 0.007, 2)}
        for label, score in (("FT", 0.93), ("AdaLink", 0.86))
    }
    assert plot(tmp_path / "t.png", experiment, table) and (tmp_path / "t.png").is_file()
    assert figures[0].axes[0].get_ylim()[0] == 0.0
    assert figures[0].axes[0].get_ylabel() == "test accuracy (points)"


def test_a_line_chart_not_from_zero_says_so(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    conditions = tuple(Condition(f"r{rank}", (), x=rank) for rank in (1, 4, 16))
    experiment = Experiment("t", "title", "Table 2", "protocol", conditions, judge=lambda _: [], plot="line")
    table = {
        f"r{rank}": {"scores": {"0": score}, "summary": Summary(score, 0.0, 1)}
        for rank, score in ((1, 0.78), (4, 0.79), (16, 0.80))
    }
    assert plot(tmp_path / "t.png", experiment, table)
    axis = figures[0].axes[0]
    assert axis.get_ylim()[0] > 0 and axis.get_ylabel() == "test accuracy (points; axis not from 0)"
