"""`adalink export` end to end: train 2 steps with `adalink train`, export, load with plain peft + transformers."""

from __future__ import annotations

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adalink.cli import main
from adalink.runs.reading import load_run
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

TEXTS = ["great lovely day", "awful poor food", "the movie was not very good"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-cli")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    data = write_sentiment_csv(root / "sentiment.csv", rows=40)
    args = ["train", "--model", model, "--train-file", data, "--max-steps", "2", "--batch-size", "4", "--lr", "5e-2"]
    assert main([*args, "--max-eval", "4", "--output-dir", str(root / "run")]) == 0
    return root / "run"


def test_export_loads_in_plain_peft_with_the_runs_logits_and_head(run_dir, tmp_path, capsys):
    assert main(["export", "--adapter", str(run_dir), "--out", str(tmp_path)]) == 0
    directory = tmp_path / "sentiment"  # the task is named after the training file
    assert f"wrote {directory}" in capsys.readouterr().out
    info = json.loads((directory / "adalink_task.json").read_text())
    assert info["label_names"] == ["negative", "positive"] and info["num_labels"] == 2
    base = AutoModelForSequenceClassification.from_pretrained(info["base_model"], num_labels=info["num_labels"])
    theirs = PeftModel.from_pretrained(base, directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    ours = load_run(run_dir).model
    with torch.no_grad():
        expected = ours(**batch).logits
        torch.testing.assert_close(theirs(**batch).logits, expected, atol=1e-5, rtol=1e-5)
        with ours.disable_adapter():
            assert not torch.allclose(ours(**batch).logits, expected, atol=1e-4)  # the trained link matters
        base_head = AutoModelForSequenceClassification.from_pretrained(info["base_model"], num_labels=2).classifier
        assert not torch.allclose(theirs.get_base_model().classifier(torch.ones(1, 32)), base_head(torch.ones(1, 32)))


@pytest.mark.parametrize(
    ("missing_run", "extra", "message"),
    [
        (False, ["--task", "nope"], "--task 'nope' is invalid: expected one of this run's tasks (sentiment)"),
        (True, [], "expected an `adalink train` output directory, found none"),
    ],
)
def test_errors_are_reported_on_one_line_with_status_2(run_dir, tmp_path, capsys, missing_run, extra, message):
    source = tmp_path / "no-run" if missing_run else run_dir
    assert main(["export", "--adapter", str(source), "--out", str(tmp_path / "out"), *extra]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("adalink export: error: ") and message in last
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("architecture", "noted"), [("qwen2", True), ("llama", False)])
def test_a_generative_export_for_a_family_vllm_does_not_serve_says_so(tmp_path, capsys, architecture, noted):
    """The peft files are exact either way; vLLM 0.32 refuses Qwen2's embedding LoRA (the measured matrix), so the
    export says what serves it instead, and says nothing for Llama, where vLLM is exact."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    model = save_tiny_checkpoint(tmp_path / "tiny", "llama")
    if architecture == "qwen2":
        vocab = len((tmp_path / "tiny" / "vocab.txt").read_text().split())
        config = Qwen2Config(
            vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=1, max_position_embeddings=128, tie_word_embeddings=True, pad_token_id=0,
        )  # fmt: skip
        Qwen2ForCausalLM(config).save_pretrained(model)
    data = write_sentiment_csv(tmp_path / "sentiment.csv", rows=40)
    args = ["train", "--model", model, "--train-file", data, "--max-steps", "1", "--batch-size", "4", "--max-eval", "4"]
    assert main([*args, "--output-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main(["export", "--adapter", str(tmp_path / "run"), "--out", str(tmp_path / "peft")]) == 0
    err = capsys.readouterr().err
    if noted:
        assert "adalink export: note: these adapters are exact in Hugging Face peft; for vLLM:" in err, err
        assert "Qwen2ForCausalLM: vLLM 0.32" in err and "--engine vllm --fold" in err, err
    else:
        assert "note:" not in err, err
