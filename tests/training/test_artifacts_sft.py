"""An sft run directory in use: ``adalink eval`` (ROUGE-L and exact match, and the base model's zero-shot score),
``adalink predict`` (prompts, chats and plain lines in, generated responses out) and ``adalink merge``."""

from __future__ import annotations

import json
import re

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from adalink.cli import main
from adalink.data import GenerationExample
from adalink.runs.loading import load_tasks, setup_model
from adalink.runs.reading import load_run
from adalink.tasks.evaluation import evaluate, generate_texts, rouge_l
from adalink.tasks.examples import TaskExample
from adalink.training.args import TrainArgs
from adalink.training.artifacts import evaluate_run
from tiny_models import WORDS, save_tiny_checkpoint

TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)
MAX_EVAL = 4


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """AdaLink trained 6 steps on prompt -> response pairs on a tiny Llama whose tokenizer has a chat template."""
    root = tmp_path_factory.mktemp("sft-run")
    model = save_tiny_checkpoint(root / "llama", "llama")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.chat_template = TEMPLATE
    tokenizer.save_pretrained(model)
    with open(root / "pairs.jsonl", "w") as handle:
        for i in range(30):
            words = WORDS[i % 10 : i % 10 + 3]
            handle.write(json.dumps({"prompt": f"say {' '.join(words)} {i}", "response": " ".join(words[::-1])}) + "\n")
    args = ["train", "--model", model, "--format", "sft", "--train-file", str(root / "pairs.jsonl")]
    args += ["--max-steps", "6", "--batch-size", "4", "--lr", "5e-2", "--max-length", "40", "--max-new-tokens", "6"]
    assert main([*args, "--max-eval", str(MAX_EVAL), "--output-dir", str(root / "run")]) == 0
    return root / "run"


def test_eval_reports_rouge_l_and_exact_match_as_train_did(run_dir):
    assert main(["eval", "--adapter", str(run_dir), "--max-eval", str(MAX_EVAL)]) == 0
    evaluated = json.loads((run_dir / "eval-test.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["metric"] == "rouge_l" and evaluated["score"] == metrics["score"]
    assert evaluated["per_task"] == evaluated["rouge_l"] == metrics["rouge_l"]
    assert set(evaluated["exact_match"]) == {"pairs"} and 0 <= evaluated["exact_match"]["pairs"] <= 1


def test_the_base_only_score_is_the_zero_shot_score_of_the_plain_base(run_dir, tmp_path):
    scores = evaluate_run(run_dir, max_eval=MAX_EVAL, base_only=True, predictions=tmp_path / "base.jsonl")
    records = [json.loads(line) for line in (tmp_path / "base.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(len(records))) and 0 < len(records) <= MAX_EVAL
    assert sum(r["score"] for r in records) / len(records) == pytest.approx(scores["pairs"])
    assert all(isinstance(r["prediction"], str) and isinstance(r["reference"], str) for r in records)
    run = json.loads((run_dir / "run.json").read_text())
    setup = setup_model(run["model"], "sft", [])
    plain = setup.build_base(seed=0).eval()  # no adapter at all
    datasets = load_tasks(TrainArgs(**run["args"]).data)
    expected = evaluate(plain, setup.fmt, setup.tokenizer, datasets, split="test", max_examples=MAX_EVAL, max_length=40)
    assert scores == expected
    assert json.loads((run_dir / "eval-test-base.json").read_text())["per_task"] == expected


def test_predict_generates_for_prompts_chats_and_plain_lines(run_dir, tmp_path):
    loaded = load_run(run_dir)
    (data,) = load_tasks(TrainArgs(**loaded.run["args"]).data)
    test = list(data.test)[:MAX_EVAL]
    n, chat = len(test), [{"role": "user", "content": "say good great"}]
    requests = [json.dumps({"prompt": e.prompt, "task": "pairs"}) for e in test]
    (tmp_path / "in.jsonl").write_text("\n".join([*requests, json.dumps({"messages": chat}), "say bad awful"]) + "\n\n")
    command = ["predict", "--adapter", str(run_dir), "--input", str(tmp_path / "in.jsonl")]
    assert main([*command, "--output", str(tmp_path / "out.jsonl")]) == 0
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(records) == n + 2 and all(r["task"] == "pairs" for r in records)
    assert [r["prompt"] for r in records[:n]] == [e.prompt for e in test]
    assert records[n] == {"task": "pairs", "messages": chat, "generated": records[n]["generated"]}
    assert records[-1]["prompt"] == "say bad awful"
    asked = [*test, GenerationExample("say good great", "", (("user", "say good great"),))]
    generated = generate_texts(loaded.model, loaded.fmt, loaded.tokenizer, [TaskExample(0, e) for e in asked], 40, 6)
    assert [r["generated"] for r in records[: n + 1]] == [text.strip() for text in generated]
    metrics = json.loads((run_dir / "metrics.json").read_text())  # predict's answers recompute train's score
    ours = rouge_l([r["generated"] for r in records[:n]], [e.response for e in test])
    assert ours == pytest.approx(metrics["score"], abs=1e-12)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"text": "say good"}', r'line 1: expected a string field "prompt" or a "messages" list'),
        ('{"messages": [{"role": "assistant", "content": "hi"}]}', r"line 1: the last message is the assistant's"),
        ('{"messages": "[]"}', r"line 1: expected 'messages' to be a list"),
    ],
)
def test_predict_refuses_malformed_requests_naming_the_line(run_dir, tmp_path, capsys, line, expected):
    (tmp_path / "in.jsonl").write_text(line + "\n")
    assert main(["predict", "--adapter", str(run_dir), "--input", str(tmp_path / "in.jsonl"), "--output", "-"]) == 2
    assert re.search(expected, capsys.readouterr().err)


def test_merge_folds_the_adapter_into_a_plain_decoder_that_generates_the_same(run_dir, tmp_path):
    assert main(["merge", "--adapter", str(run_dir), "--out", str(tmp_path / "merged")]) == 0
    loaded = load_run(run_dir)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    items = [TaskExample(0, GenerationExample("say good movie", "")), TaskExample(0, GenerationExample("say sad", ""))]
    ours = generate_texts(loaded.model, loaded.fmt, loaded.tokenizer, items, 40, 6)
    theirs = generate_texts(plain, loaded.fmt, AutoTokenizer.from_pretrained(tmp_path / "merged"), items, 40, 6)
    assert ours == theirs
    batch = loaded.fmt.collate([TaskExample(0, GenerationExample("say good", "good"))], loaded.tokenizer, 40)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
    with torch.no_grad():
        torch.testing.assert_close(plain(**inputs).logits, loaded.model(**inputs).logits, atol=1e-5, rtol=1e-5)
