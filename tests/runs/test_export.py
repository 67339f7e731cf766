"""A text-to-text run's export: the exact prompt template beside the adapter, the same greedy answers in peft."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from adalink.cli import main
from adalink.export import ExportError
from adalink.runs.export import export_run, prompt_template
from adalink.runs.reading import load_run
from adalink.tasks.formats import TaskInfo, TextToTextFormat
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-run")
    model = save_tiny_checkpoint(root / "tiny-llama", "llama")
    data = write_sentiment_csv(root / "s.csv", rows=40)
    args = ["train", "--model", model, "--train-file", data, "--max-steps", "2", "--batch-size", "4", "--lr", "5e-2"]
    assert main([*args, "--max-eval", "2", "--output-dir", str(root / "run")]) == 0
    return root / "run"


def test_prompt_template_is_the_format_prompt_with_a_slot():
    fmt = TextToTextFormat([TaskInfo("odd {name}", ("a", "b"))], encoder_decoder=False)
    before, after = prompt_template(fmt, 0)
    assert before + "some text" + after == fmt.prompt(0, "some text")


def test_text_to_text_export_records_the_template_and_generates_the_same(run_dir, tmp_path):
    (directory,) = export_run(run_dir, tmp_path)
    info = json.loads((directory / "adalink_task.json").read_text())
    loaded = load_run(run_dir)
    text = "great lovely day"
    prompt = info["prompt_template"].format(text=text)
    assert prompt == loaded.fmt.prompt(0, text) == info["prompt_prefix"] + text + info["prompt_suffix"]
    end = loaded.tokenizer.eos_token or loaded.tokenizer.sep_token  # what the run appended to each answer
    assert info["answer_template"].format(label="positive") == " positive" + end
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert tokenizer.pad_token == loaded.tokenizer.pad_token
    theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(info["base_model"]), directory).eval()
    batch = tokenizer([prompt], return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        torch.testing.assert_close(theirs(**batch).logits, loaded.model(**batch).logits, atol=1e-5, rtol=1e-5)
        mine = loaded.model.generate(**batch, max_new_tokens=4, do_sample=False)
        assert torch.equal(theirs.generate(**batch, max_new_tokens=4, do_sample=False), mine)


def test_a_run_without_an_adapter_is_refused(run_dir, tmp_path):
    copy = tmp_path / "full-run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    run = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run, "saves_adapter": False}))
    with pytest.raises(ExportError, match=r"full fine-tuning has no adapter: `adalink merge` writes"):
        export_run(copy, tmp_path / "out")
