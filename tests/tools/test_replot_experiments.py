"""``tools/replot_experiments.py``: a committed summary is drawn again from its numbers alone (bars from 0), and a
condition the experiment no longer defines is named, not drawn."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("replot_experiments", ROOT / "tools" / "replot_experiments.py")
assert _spec is not None and _spec.loader is not None
replot_experiments = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(replot_experiments)


def test_a_kept_summary_is_redrawn_from_its_numbers(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    kept = tmp_path / "60steps"
    kept.mkdir()
    document = json.loads((ROOT / "experiments" / "results" / "60steps" / "table5.json").read_text())
    document["conditions"]["a row no longer defined"] = document["conditions"]["FT single-task"]
    (kept / "table5.json").write_text(json.dumps(document))
    (kept / "runs").mkdir()
    shutil.copy(kept / "table5.json", kept / "runs" / "table5.json")  # a run folder's files are not summaries

    assert replot_experiments.main(["--results", str(tmp_path)]) == 0
    assert (kept / "table5.png").is_file() and not (kept / "runs" / "table5.png").exists()
    (figure,) = figures
    axis = figure.axes[0]
    assert axis.get_ylim()[0] == 0.0
    heights = sorted(round(bar.get_height(), 6) for bar in axis.patches)
    drawn = [100 * row["mean"] for label, row in document["conditions"].items() if label != "a row no longer defined"]
    assert heights == sorted(round(h, 6) for h in drawn)
    assert replot_experiments.replot(kept / "table5.json") == ["a row no longer defined"]
