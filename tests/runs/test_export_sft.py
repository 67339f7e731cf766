"""An sft run's export: peft's adapter files with how prompts and responses were given, the same generations in peft."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from adalink.cli import main
from adalink.data import GenerationExample
from adalink.runs.export import export_run
from adalink.runs.reading import load_run
from adalink.tasks.evaluation import generate_texts
from adalink.tasks.examples import TaskExample
from tiny_models import WORDS, save_tiny_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-sft")
    model = save_tiny_checkpoint(root / "tiny-llama", "llama")
    with open(root / "pairs.jsonl", "w") as handle:
        for i in range(24):
            words = WORDS[i % 10 : i % 10 + 2]
            handle.write(json.dumps({"prompt": f"say {' '.join(words)} {i}", "response": " ".join(words)}) + "\n")
    args = ["train", "--model", model, "--format", "sft", "--train-file", str(root / "pairs.jsonl"), "--lr", "5e-2"]
    args += ["--max-steps", "3", "--batch-size", "4", "--max-length", "32", "--max-new-tokens", "5", "--max-eval", "2"]
    assert main([*args, "--output-dir", str(root / "run")]) == 0
    return root / "run"


def test_sft_export_records_the_response_end_and_generates_the_same(run_dir, tmp_path):
    (directory,) = export_run(run_dir, tmp_path)
    info = json.loads((directory / "adalink_task.json").read_text())
    loaded = load_run(run_dir)
    assert info["format"] == "sft" and info["label_names"] == [] and not info["encoder_decoder"]
    assert info["eos_token_id"] == loaded.tokenizer.sep_token_id and info["response_template"] == "{response}[SEP]"
    assert info["max_new_tokens"] == 5 and info["max_length"] == 32
    tokenizer = AutoTokenizer.from_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(info["base_model"]), directory).eval()
    items = [TaskExample(0, GenerationExample(f"say {w} movie", "")) for w in WORDS[:4]]
    ours = generate_texts(loaded.model, loaded.fmt, loaded.tokenizer, items, 32, 5)
    assert generate_texts(theirs, loaded.fmt, tokenizer, items, 32, 5) == ours
    batch = loaded.fmt.generation_batch(items, tokenizer, 32)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        torch.testing.assert_close(theirs(**inputs).logits, loaded.model(**inputs).logits, atol=1e-5, rtol=1e-5)
