"""``adalink merge`` builds a run's base from its ``run.json`` alone: folding imports no task format."""

import os
import subprocess
import sys

from transformers import AutoModelForSequenceClassification

from adalink.training.args import TrainArgs
from adalink.training.loop import train
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


def test_folding_a_run_needs_no_task_format(tmp_path):
    model = save_tiny_checkpoint(tmp_path / "tiny-bert", "bert")
    data = write_sentiment_csv(tmp_path / "s.csv", 40)
    run = tmp_path / "run"
    train(TrainArgs(model=model, train_file=data, max_steps=2, batch_size=4, max_eval=4, output_dir=str(run)))
    code = f"""
import sys
from adalink.runs.folding import merge_run
merge_run({str(run)!r}, {str(tmp_path / "merged")!r})
print(sorted(name for name in ("adalink.training", "adalink.tasks", "adalink.runs.loading") if name in sys.modules))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}  # adalink as here, in a fresh interpreter
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "[]"
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged")
    assert plain.config.num_labels == 2 and plain.config.id2label == {0: "negative", 1: "positive"}
