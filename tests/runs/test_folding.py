"""Folding a task into a plain checkpoint (:func:`adalink.runs.folding.fold_task`, ``adalink merge``) on a classifier
whose head has several layers."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification

from adalink.runs.folding import fold_task
from adalink.runs.reading import load_run
from adalink.training.args import TrainArgs
from adalink.training.loop import train
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


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
