"""vllm_fold: ``adalink serve --engine vllm --fold``, each task folded into a plain checkpoint in a vLLM engine of its
own behind one endpoint. The fold, the command lines and the refusals need no vLLM; the start, routing and stop run
on the stand-in of test_vllm_runtime.py (``fake_vllm.py``); the last test starts vLLM for real, on a family vLLM
refuses an embedding LoRA for (Qwen2), where ``ADALINK_VLLM_PYTHON`` names the Python of an environment that has it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch
from transformers import AutoModelForCausalLM

from adalink.cli import main
from adalink.runs.reading import read_run
from adalink.serve import AdapterStack
from adalink.serve.vllm_engine import VLLM_PYTHON_ENV, VllmError
from adalink.serve.vllm_fold import FoldedEngine, check_memory, engine_command, fold_for_vllm
from serve_support import alive, fake_vllm_python, free_port, port_free

VLLM_PYTHON = os.environ.get(VLLM_PYTHON_ENV)


@pytest.fixture(scope="module")
def folded(text2text_runs, tmp_path_factory) -> list[FoldedEngine]:
    runs = {"sentiment": text2text_runs["sentiment"], "topic": text2text_runs["topic"]}
    return fold_for_vllm(runs, tmp_path_factory.mktemp("folded"))


def test_each_folded_task_answers_what_adalink_answers(folded, text2text_runs):
    stack = AdapterStack.from_runs([text2text_runs["sentiment"], text2text_runs["topic"]], device="cpu")
    assert [engine.task for engine in folded] == list(stack.tasks)
    prompts = [stack.encode(text) for text in ("good movie", "awful food service", "the day was very not lovely")]
    for engine in folded:
        plain = AutoModelForCausalLM.from_pretrained(engine.checkpoint).eval()  # no adalink, no peft
        expected = stack.complete([(engine.task, ids, 5) for ids in prompts])
        for ids, completion in zip(prompts, expected, strict=True):
            with torch.no_grad():
                row = plain.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False)[0, len(ids) :]
            ends = {stack.tokenizer.eos_token_id, plain.generation_config.eos_token_id}  # [SEP] ends the tiny model's
            assert [t for t in row.tolist() if t not in ends] == [t for t in completion.token_ids if t not in ends]


def test_an_engine_serves_its_checkpoint_without_lora_under_the_task_name(folded):
    command = engine_command(folded[0], port=8124, vllm_python="/envs/vllm/bin/python", kv_cache_gib=0.5)
    assert command[:4] == ["/envs/vllm/bin/python", "-m", "vllm.entrypoints.openai.api_server", "--model"]

    def value(flag: str) -> str:
        return command[command.index(flag) + 1]

    assert value("--model") == str(folded[0].checkpoint) and value("--served-model-name") == folded[0].task
    assert (value("--host"), value("--port"), value("--dtype")) == ("127.0.0.1", "8124", "float32")
    assert value("--kv-cache-memory-bytes") == str(1 << 29)
    assert not any("lora" in part for part in command)


def test_engines_that_do_not_fit_in_memory_are_refused(folded):
    check_memory(folded, 1.0, available=3 << 30)
    with pytest.raises(VllmError, match=r"2 tasks x 2 GiB of KV cache \(--vllm-kv-cache-gib\) .* than the 3.0 GiB"):
        check_memory(folded, 2.0, available=3 << 30)
    with pytest.raises(VllmError, match="--vllm-kv-cache-gib 0 is invalid"):
        check_memory(folded, 0, available=3 << 30)


def test_runs_vllm_cannot_generate_for_are_refused(classification_runs, text2text_runs, tmp_path):
    with pytest.raises(VllmError, match="'classification' run; vLLM generates text"):
        fold_for_vllm([classification_runs["sentiment"]], tmp_path / "out")
    with pytest.raises(VllmError, match="must be unique"):
        fold_for_vllm({"one": text2text_runs["topic"], "two": text2text_runs["topic"]}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fold_is_an_option_of_the_vllm_engine(text2text_runs, capsys):
    assert main(["serve", "--adapter", str(text2text_runs["topic"]), "--fold"]) == 2
    assert "--fold and --vllm-kv-cache-gib apply to --engine vllm only" in capsys.readouterr().err


# ------------------------------------------------------------------------------- on the stand-in for vLLM
def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_one_endpoint_routes_each_task_to_its_engine_and_a_signal_stops_them_all(text2text_runs, tmp_path, signum):
    tasks = [t["name"] for r in ("sentiment", "topic") for t in read_run(text2text_runs[r])["tasks"]]
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path), "FAKE_VLLM_PIDS": str(tmp_path / "p.json")}
    command = [sys.executable, "-m", "adalink", "serve", "--engine", "vllm", "--fold", "--port", str(port)]
    command += ["--adapter", str(text2text_runs["sentiment"]), "--adapter", str(text2text_runs["topic"])]
    command += ["--vllm-python", fake_vllm_python(tmp_path), "--no-access-log", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "vLLM ready" in line:
                break
        assert "one engine per task" in lines[-1], "".join(lines)
        assert len(list(tmp_path.glob("adalink-vllm-fold-*/*/config.json"))) == 2  # the folded checkpoints
        url = f"http://127.0.0.1:{port}/v1/completions"
        for task in [*tasks, *reversed(tasks)]:
            status, answer = _post(url, {"model": task, "prompt": "x", "max_tokens": 1})
            assert (status, answer["served_by"]) == (200, task)
        status, answer = _post(url, {"model": "nope", "prompt": "x"})
        assert status == 404 and str(tasks) in answer["error"]["message"]
        pids = [pid for task in tasks for pid in json.loads((tmp_path / f"p-{task}.json").read_text())]
        assert len(pids) == 6 and all(alive(pid) for pid in pids)  # 2 engines, each with 2 children
        started = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0
        assert time.monotonic() - started < 60  # SIGTERM, then SIGKILL after 5 s for each SIGTERM-proof worker
        assert not any(alive(pid) for pid in pids)
        assert port_free(port) and not list(tmp_path.glob("adalink-vllm-fold-*"))
        assert f"{signal.Signals(signum).name}: stopping 2 vLLM engine(s)" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
