"""Folding a task into a plain checkpoint (:func:`adalink.runs.folding.fold_task`, ``adalink merge``): the base is
built from the run's ``run.json`` alone (no task format), and a classifier whose head has several layers is sliced at
its output layer."""

import os
import subprocess
import sys

import torch
from transformers import AutoModelForSequenceClassification

from adalink.runs.folding import fold_task
from adalink.runs.reading import load_run
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


def test_a_roberta_style_head_is_sliced_at_its_output_layer(tmp_path):
    """RoBERTa's classification head is dense -> out_proj: the merge keeps the dense layer and slices out_proj."""
    model = save_tiny_checkpoint(tmp_path / "tiny-roberta", "roberta")
    data = write_sentiment_csv(tmp_path / "s.csv", 40)
    args = TrainArgs(
        model=model, train_file=data, max_steps=3, batch_size=8, max_eval=8, output_dir=str(tmp_path / "run")
    )
    train(args)
    folded = fold_task(tmp_path / "run", tmp_path / "merged")
    assert (folded.architecture, folded.dtype) == ("RobertaForSequenceClassification", "float32")
    merged = folded.path
    plain = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    assert type(plain.classifier).__name__ == "RobertaClassificationHead" and plain.config.num_labels == 2
    unmerged = load_run(tmp_path / "run").model
    ids = torch.randint(5, 40, (2, 7), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = unmerged(input_ids=ids, attention_mask=mask, task=torch.zeros(2, dtype=torch.long)).logits
        assert torch.allclose(plain(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-5)
