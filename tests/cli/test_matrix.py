"""The CLI contract, cell by cell: every method of `adalink methods` x every format (classification on a tiny BERT;
text-to-text on tiny GPT-2, Llama and T5) x {train, eval, predict, merge, export}, run in-process with
``adalink.cli.main``; `--resume` after a SIGKILL on a representative subset (slow: a subprocess each).

Each run trains 2 steps on 40 rows; a run is trained once per module and shared by its cells. Every check is
exact: eval's score is train's, predict's answers recompute that score, a merged checkpoint gives the adapter's
logits in plain transformers, export writes peft's files or refuses with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from adalink.cli import main
from adalink.methods.base import METHOD_CONFIGS
from adalink.runs.loading import load_tasks
from adalink.runs.reading import load_run
from adalink.tasks.examples import TaskExample
from adalink.training.args import TrainArgs
from adalink.training.methods import method_names
from tiny_models import save_tiny_checkpoint, write_sentiment_csv

MODELS = {"bert": "classification", "gpt2": "text2text", "llama": "text2text", "t5": "text2text"}
METHODS = method_names()  # what `adalink methods` lists
# Refused on purpose, with the reason: (method, model) -> what `adalink train` / `adalink export` must say.
TRAIN_REFUSED = {("bitfit", kind): "has no bias parameters" for kind in ("llama", "t5")}  # nothing to train
EXPORT_REFUSED = {
    ("krona", "gpt2"): "are transformers Conv1D layers or slices of a fused layer",  # peft's LoKr: nn.Linear only
    ("prefix_tuning", "t5"): "peft's prefix layout makes layers 0 and 1 read the same rows",
}
ALL = [pytest.param(method, kind, id=f"{method}-{kind}") for method in METHODS for kind in MODELS]
CELLS = [cell for cell in ALL if tuple(cell.values) not in TRAIN_REFUSED]  # the runs that exist
MAX_EVAL = 4
PLAIN = {"bert": AutoModelForSequenceClassification, "t5": AutoModelForSeq2SeqLM}


def _exportable() -> set[str]:
    from adalink.export.convert import CONVERTERS

    return set(CONVERTERS)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("matrix")
    data = write_sentiment_csv(root / "sentiment.csv", rows=40)
    return {"root": root, "data": data, "models": {}, "runs": {}}


def _model(workspace, kind: str) -> str:
    if kind not in workspace["models"]:
        workspace["models"][kind] = save_tiny_checkpoint(workspace["root"] / f"tiny-{kind}", kind)
    return workspace["models"][kind]


def _train_args(workspace, method: str, kind: str, out: Path, *extra: str) -> list[str]:
    size = ("--rank", "2") if METHOD_CONFIGS[method].size_field else ()  # --rank is refused where there is no size
    return [
        *("train", "--model", _model(workspace, kind), "--train-file", workspace["data"], "--method", method),
        *("--max-steps", "2", "--batch-size", "4", "--max-length", "32", "--max-eval", str(MAX_EVAL)),
        *("--save-every", "100", *size, "--output-dir", str(out), *extra),
    ]


def trained(workspace, method: str, kind: str, capsys) -> Path:
    """The run of ``method`` on ``kind``, trained on first use; a failed training fails every cell of the run."""
    key = (method, kind)
    if key not in workspace["runs"]:
        out = workspace["root"] / "runs" / f"{method}-{kind}"
        capsys.readouterr()
        code = main(_train_args(workspace, method, kind, out))
        workspace["runs"][key] = (code, capsys.readouterr().err[-2000:], out)
    code, err, out = workspace["runs"][key]
    assert code == 0, f"adalink train --method {method} on {kind} exited {code}:\n{err}"
    return out


def _test_examples(run_dir: Path) -> list:
    run = json.loads((run_dir / "run.json").read_text())
    (task,) = load_tasks(TrainArgs(**run["args"]).data)
    return list(task.test)[:MAX_EVAL]


@pytest.mark.parametrize(("method", "kind"), ALL)
def test_train(workspace, method, kind, capsys):
    if (method, kind) in TRAIN_REFUSED:
        out = workspace["root"] / "refused" / f"{method}-{kind}"
        assert main(_train_args(workspace, method, kind, out)) == 2
        assert TRAIN_REFUSED[method, kind] in capsys.readouterr().err
        assert not (out / "checkpoints").exists()  # refused before anything was trained
        return
    out = trained(workspace, method, kind, capsys)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == MODELS[kind] and metrics["steps"] == 2 and metrics["method"] == method
    assert round(metrics["score"] * MAX_EVAL) == metrics["score"] * MAX_EVAL  # k of the 4 examples scored
    assert {"adapter_config.json", "adapter_model.safetensors", "run.json", "metrics.json"} <= {
        p.name for p in out.iterdir()
    }
    assert metrics["trainable_params"] > 0
    cls = METHOD_CONFIGS[method]  # the run records its whole config: the method's defaults, --rank where it applies
    resolved = json.loads((out / "run.json").read_text())["method_config"]
    assert resolved == metrics["method_config"] == cls.from_dict(resolved).to_dict()
    assert {k: v for k, v in resolved.items() if k not in ("tasks", "modules_to_save", cls.size_field)} == {
        k: v for k, v in cls().to_dict().items() if k not in ("tasks", "modules_to_save", cls.size_field)
    }
    if cls.size_field:
        assert resolved[cls.size_field] == 2


@pytest.mark.parametrize(("method", "kind"), CELLS)
def test_eval(workspace, method, kind, capsys):
    out = trained(workspace, method, kind, capsys)
    assert main(["eval", "--adapter", str(out), "--max-eval", str(MAX_EVAL)]) == 0
    evaluated = json.loads((out / "eval-test.json").read_text())
    assert evaluated["score"] == json.loads((out / "metrics.json").read_text())["score"]


@pytest.mark.parametrize(("method", "kind"), CELLS)
def test_predict(workspace, method, kind, capsys, tmp_path):
    out = trained(workspace, method, kind, capsys)
    examples = _test_examples(out)
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps({"text": e.text}) + "\n" for e in examples))
    assert main(["predict", "--adapter", str(out), "--input", str(source), "--output", str(target)]) == 0
    records = [json.loads(line) for line in target.read_text().splitlines()]
    labels = json.loads((out / "run.json").read_text())["tasks"][0]["label_names"]
    assert [r["text"] for r in records] == [e.text for e in examples]
    correct = sum(r["label"] == labels[e.label] for r, e in zip(records, examples, strict=True))
    assert correct / len(examples) == json.loads((out / "metrics.json").read_text())["score"]
    detail = "probabilities" if MODELS[kind] == "classification" else "generated"
    assert all(detail in r and (r["label"] is None or r["label"] in labels) for r in records)


@pytest.mark.parametrize(("method", "kind"), CELLS)
def test_merge(workspace, method, kind, capsys, tmp_path):
    out = trained(workspace, method, kind, capsys)
    capsys.readouterr()
    code = main(["merge", "--adapter", str(out), "--out", str(tmp_path / "merged")])
    if not METHOD_CONFIGS[method].mergeable:
        assert code == 2 and "cannot be merged" in capsys.readouterr().err
        return
    assert code == 0, capsys.readouterr().err
    assert not (tmp_path / "merged" / "adapter_config.json").exists()  # a plain checkpoint, not an adapter
    plain = PLAIN.get(kind, AutoModelForCausalLM).from_pretrained(tmp_path / "merged").eval()
    loaded = load_run(out)
    items = [TaskExample(0, e) for e in _test_examples(out)]
    batch = loaded.fmt.collate(items, loaded.tokenizer, 32)  # T5 builds its decoder inputs from the labels
    inputs = {k: v for k, v in batch.items() if k != "task_ids" and (k != "labels" or kind == "t5")}
    with torch.no_grad():
        adapted = loaded.model(**inputs, task=batch["task_ids"])
        torch.testing.assert_close(plain(**inputs).logits, adapted.logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("method", "kind"), CELLS)
def test_export(workspace, method, kind, capsys, tmp_path):
    out = trained(workspace, method, kind, capsys)
    capsys.readouterr()
    code = main(["export", "--adapter", str(out), "--out", str(tmp_path / "peft")])
    err = capsys.readouterr().err
    if method not in _exportable():
        assert code == 2 and "error: " in err and method in err, err
        return
    if (method, kind) in EXPORT_REFUSED:
        assert code == 2 and EXPORT_REFUSED[method, kind] in err, err
        assert not (tmp_path / "peft").exists()  # nothing half-written
        return
    assert code == 0, err
    exported = tmp_path / "peft" / "sentiment"  # a task not named "default" goes to OUT/TASK
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in exported.iterdir()}
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(str(exported)).peft_type  # peft reads it as one of its own


# ---------------------------------------------------------------------------------------------- --resume after a kill
RESUMED = [("adalink", "bert"), ("lora", "gpt2"), ("prompt_tuning", "llama"), ("ia3", "t5"), ("full", "bert")]


@pytest.mark.slow
@pytest.mark.parametrize(("method", "kind"), [pytest.param(m, k, id=f"{m}-{k}") for m, k in RESUMED])
def test_resume_after_a_kill_ends_as_an_uninterrupted_run(workspace, method, kind, tmp_path):
    """SIGKILL `adalink train` once a mid-run checkpoint exists, `--resume` it (in-process, one thread, as the
    subprocess): the trained weights equal those of an uninterrupted run bit for bit."""
    steps = ("--max-steps", "40", "--save-every", "4", "--seed", "3")
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    command = [sys.executable, "-m", "adalink", *_train_args(workspace, method, kind, killed, *steps)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    log = tmp_path / "killed.log"
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoints" / "latest").exists():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.005)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not (killed / "metrics.json").exists(), "the kill came after the run had finished"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*_train_args(workspace, method, kind, killed, *steps), "--resume"]) == 0
        assert main(_train_args(workspace, method, kind, whole, *steps)) == 0
    finally:
        torch.set_num_threads(threads)
    weights = "adapter_model.safetensors"  # every method's, full tuning's too
    from safetensors.torch import load_file

    a, b = load_file(killed / weights), load_file(whole / weights)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
