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
from pathlib import Path

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
    check_memory(folded, 1.0, available=7 << 30)  # 2 x (1 GiB + the processes' 2 GiB) + tiny weights
    too_much = r"2 tasks x \(2 GiB of KV cache \(--vllm-kv-cache-gib\) \+ ~2 GiB .* the 7.0 GiB"
    with pytest.raises(VllmError, match=too_much):
        check_memory(folded, 2.0, available=7 << 30)
    with pytest.raises(VllmError, match="--vllm-kv-cache-gib 0 is invalid"):
        check_memory(folded, 0, available=7 << 30)


def test_runs_vllm_cannot_generate_for_are_refused(classification_runs, text2text_runs, tmp_path):
    with pytest.raises(VllmError, match="'classification' run; vLLM generates text"):
        fold_for_vllm([classification_runs["sentiment"]], tmp_path / "out")
    with pytest.raises(VllmError, match="must be unique"):
        fold_for_vllm({"one": text2text_runs["topic"], "two": text2text_runs["topic"]}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fold_is_an_option_of_the_vllm_engine(text2text_runs, capsys):
    assert main(["serve", "--adapter", str(text2text_runs["topic"]), "--fold"]) == 2
    assert "--fold and --vllm-kv-cache-gib apply to --engine vllm only" in capsys.readouterr().err
    args = ["serve", "--engine", "vllm", "--adapter", str(text2text_runs["topic"]), "--vllm-kv-cache-gib", "2"]
    assert main(args) == 2
    assert "--vllm-kv-cache-gib applies to --fold" in capsys.readouterr().err


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


def _start_folded(runs: dict, tmp_path: Path, port: int, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path), **env}
    environment["FAKE_VLLM_PIDS"] = str(tmp_path / "p.json")
    command = [sys.executable, "-m", "adalink", "serve", "--engine", "vllm", "--fold", "--port", str(port)]
    command += [arg for run in runs.values() for arg in ("--adapter", str(run))]
    command += ["--vllm-python", fake_vllm_python(tmp_path), "--log-level", "warning"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)


def _engine_pids(tmp_path: Path, count: int, timeout: float = 120) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(files := list(tmp_path.glob("p-*.json"))) < count:
        assert time.monotonic() < deadline, "the engines did not start"
        time.sleep(0.2)
    time.sleep(0.5)  # each file is written at once; let the last one be complete
    return [pid for file in files for pid in json.loads(file.read_text())]


def test_a_signal_while_the_engines_start_stops_them_and_removes_the_folded_checkpoints(text2text_runs, tmp_path):
    port = free_port()
    runs = {"sentiment": text2text_runs["sentiment"], "topic": text2text_runs["topic"]}
    process = _start_folded(runs, tmp_path, port, FAKE_VLLM_START_DELAY="600")
    try:
        pids = _engine_pids(tmp_path, 2)  # both engines started, neither answers yet
        assert all(alive(pid) for pid in pids) and list(tmp_path.glob("adalink-vllm-fold-*"))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        output = process.stdout.read()
        assert "SIGTERM: stopping 2 vLLM engine(s)" in output and "vLLM ready" not in output
        assert not any(alive(pid) for pid in pids) and not list(tmp_path.glob("adalink-vllm-fold-*"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_an_engine_that_exits_while_serving_stops_the_server(text2text_runs, tmp_path):
    port = free_port()
    process = _start_folded({"topic": text2text_runs["topic"]}, tmp_path, port)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "vLLM ready" in line:
                break
        assert "vLLM ready" in lines[-1], "".join(lines)
        pids = _engine_pids(tmp_path, 1)
        os.kill(pids[0], signal.SIGKILL)  # the engine's server dies
        assert process.wait(timeout=60) == 1
        assert "the vLLM engine of 'topic' exited; stopping" in process.stdout.read()
        assert not any(alive(pid) for pid in pids) and port_free(port)
        assert not list(tmp_path.glob("adalink-vllm-fold-*"))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------------ vLLM for real
def _qwen2_runs(root: Path) -> dict[str, Path]:
    """Two runs on a tiny Qwen2 with a tied head (as Qwen2's small models have), heads 32 wide (vLLM's CPU attention
    has no narrower kernel): a family vLLM 0.32 refuses an embedding LoRA for (docs/vllm.md)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from serve_support import train_run, write_topic_csv
    from tiny_models import save_tiny_checkpoint, write_sentiment_csv

    model = Path(save_tiny_checkpoint(root / "tiny-qwen2", "llama"))  # its tokenizer and vocabulary
    vocab = len((model / "vocab.txt").read_text().split())
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=128, tie_word_embeddings=True, pad_token_id=0,
        bos_token_id=2, eos_token_id=3,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(model)
    sentiment, topic = write_sentiment_csv(root / "sentiment.csv", rows=120), write_topic_csv(root / "topic.csv")
    return {
        "sentiment": train_run(str(model), sentiment, root / "sentiment", rank=4, seed=1),
        "topic": train_run(str(model), topic, root / "topic", rank=8, seed=2),
    }


def _greedy(model, ids: list[int], steps: int) -> tuple[list[int], list[float]]:
    """transformers, token by token: the greedy ids and their logprobs."""
    tokens, logprobs = list(ids), []
    with torch.no_grad():
        for _ in range(steps):
            scores = torch.log_softmax(model(torch.tensor([tokens])).logits[0, -1].double(), -1)
            tokens.append(int(scores.argmax()))
            logprobs.append(float(scores.max()))
    return tokens[len(ids) :], logprobs


@pytest.mark.skipif(VLLM_PYTHON is None, reason=f"set {VLLM_PYTHON_ENV} to a Python with vLLM to run vLLM for real")
def test_fold_serves_two_tasks_exactly_on_a_family_vllm_refuses_a_lora_for(tmp_path):
    from adalink.serve.vllm_engine import VllmUnsupportedFamilyError, export_for_vllm

    runs = _qwen2_runs(tmp_path)
    with pytest.raises(VllmUnsupportedFamilyError, match=r"Qwen2ForCausalLM.*--engine vllm --fold"):
        export_for_vllm(runs, tmp_path / "export")  # what `--engine vllm` without --fold says
    stack = AdapterStack.from_runs(runs, device="cpu")
    prompts = [stack.encode(text) for text in ("good movie", "awful food service", "the day was very not lovely")]
    reference = {}
    for engine in fold_for_vllm(runs, tmp_path / "folded"):  # the checkpoints --fold serves, as transformers runs them
        plain = AutoModelForCausalLM.from_pretrained(engine.checkpoint).eval()
        reference[engine.task] = [_greedy(plain, ids, 6) for ids in prompts]
        ours = stack.complete([(engine.task, ids, 6) for ids in prompts])  # adalink's own engine, unfolded
        for completion, (tokens, _) in zip(ours, reference[engine.task], strict=True):
            until_eos = tokens[: tokens.index(3)] if 3 in tokens else tokens  # [SEP] (3) ends the tiny model's
            assert [t for t in completion.token_ids if t != 3] == until_eos

    port = free_port()
    command = [sys.executable, "-m", "adalink", "serve", "--engine", "vllm", "--fold", "--port", str(port)]
    command += [arg for run in runs.values() for arg in ("--adapter", str(run))]
    command += ["--vllm-python", VLLM_PYTHON, "--vllm-kv-cache-gib", "0.25", "--log-level", "warning"]
    log = (tmp_path / "serve.log").open("w+")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 1200
        while "vLLM ready" not in (tmp_path / "serve.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(2)
        url = f"http://127.0.0.1:{port}/v1/completions"
        worst = 0.0
        for task, expected in reference.items():
            for ids, (tokens, logprobs) in zip(prompts, expected, strict=True):
                body = {"model": task, "prompt": ids, "max_tokens": 6, "temperature": 0, "logprobs": 1}
                status, answer = _post(url, {**body, "return_token_ids": True, "ignore_eos": True})
                assert status == 200, answer
                choice = answer["choices"][0]
                assert choice["token_ids"] == tokens, task
                got = choice["logprobs"]["token_logprobs"]
                worst = max(worst, *(abs(a - b) for a, b in zip(got, logprobs, strict=True)))
        print(f"--fold on a tiny Qwen2: 2 tasks x 3 prompts x 6 greedy tokens equal, logprobs within {worst:.1e}")
        assert worst < 1e-3
        _through_the_openai_client(f"http://127.0.0.1:{port}/v1", reference, prompts[0])
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 0
        assert port_free(port) and not list(tmp_path.glob("adalink-vllm-fold-*"))
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        log.close()


def _through_the_openai_client(base_url: str, reference: dict, prompt: list[int]) -> None:
    """The official client on the one endpoint: the tasks listed, the same tokens whole and streamed (the stream passes
    through the routing proxy), and an unknown model its NotFoundError."""
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=300)
    assert sorted(model.id for model in client.models.list()) == sorted(reference)
    for task, expected in reference.items():
        asked = {"model": task, "prompt": prompt, "max_tokens": 6, "temperature": 0}
        whole = client.completions.create(**asked, extra_body={"ignore_eos": True, "return_token_ids": True})
        assert whole.choices[0].token_ids == expected[0][0]
        stream = client.completions.create(**asked, stream=True, extra_body={"ignore_eos": True})
        assert "".join(chunk.choices[0].text for chunk in stream if chunk.choices) == whole.choices[0].text
    with pytest.raises(openai.NotFoundError, match="the tasks are"):
        client.completions.create(model="nope", prompt=prompt, max_tokens=1)
