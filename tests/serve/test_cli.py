"""`adalink serve` on the command line: clear refusals at start, and a real server process that answers every
queued request when it is stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from adalink.cli import main
from adalink.serve.cli import parse_adapters
from serve_support import free_port


def test_parse_adapters_names(tmp_path):
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert parse_adapters(["runs/x", "y=runs/z/", str(odd)]) == {"x": "runs/x", "y": "runs/z/", "a=b": str(odd)}
    with pytest.raises(ValueError, match="two adapters are named 'x'"):
        parse_adapters(["runs/x", "x=other"])


def test_refusals_at_start_name_the_problem(classification_runs, text2text_runs, capsys):
    sentiment, topic = str(classification_runs["sentiment"]), str(classification_runs["topic"])
    refusals = [
        (["--adapter", sentiment, "--adapter", f"again={sentiment}"], "Task 'sentiment' of adapter 'again'"),
        (["--adapter", sentiment, "--model", str(text2text_runs["model"])], "saved for a different base model"),
        (["--adapter", sentiment, "--adapter", str(text2text_runs["topic"])], "trained on different models"),
        (["--adapter", str(classification_runs["model"])], "is not an `adalink train` output directory"),
        (["--adapter", topic, "--max-batch-size", "0"], "--max-batch-size 0 is invalid"),
        (["--adapter", topic, "--adapter-root", "/no/such/root"], "--adapter-root '/no/such/root' is invalid"),
        (["--adapter", topic, "--admin-token", "t", "--allow-unauthenticated-admin"], "contradict each other"),
    ]
    for args, message in refusals:
        assert main(["serve", *args]) == 2, args
        assert message in capsys.readouterr().err, args


def _wait_healthy(url: str, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stdout.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not become healthy")


def test_sigterm_answers_every_queued_request_then_exits(classification_runs):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "adalink", "serve", "--port", str(port), "--no-access-log", "--threads", "1"]
    command += ["--adapter", f"sent={classification_runs['sentiment']}", "--adapter", str(classification_runs["topic"])]
    command += ["--batch-window-ms", "60000"]  # requests stay queued until the shutdown drains them
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        _wait_healthy(url, process)
        models = httpx.get(f"{url}/v1/models").json()["data"]
        assert [(m["id"], m["adapter"]) for m in models] == [("sentiment", "sent"), ("topic", "topic")]

        async def scenario() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=300) as client:
                tasks = ["sentiment", "topic"] * 8
                sent = [
                    client.post("/v1/classify", json={"task": t, "inputs": [f"good food {i}"]})
                    for i, t in enumerate(tasks)
                ]
                pending = [asyncio.ensure_future(s) for s in sent]
                while (await client.get("/health")).json()["queue"] < len(pending):
                    await asyncio.sleep(0.01)
                process.send_signal(signal.SIGTERM)
                return await asyncio.gather(*pending)

        responses = asyncio.run(scenario())
        assert [r.status_code for r in responses] == [200] * 16
        labels = [r.json()["data"][0]["label"] for r in responses]
        assert set(labels[0::2]) <= {"negative", "positive"} and set(labels[1::2]) <= {"food", "movie", "service"}
        assert process.wait(timeout=120) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
        output = process.stdout.read()
        assert "adalink serve: " in output and "sent -> ['sentiment']" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_engine_vllm_without_vllm_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from adalink.cli import main

    monkeypatch.delenv("ADALINK_VLLM_PYTHON", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no `vllm` command anywhere
    code = main(["serve", "--engine", "vllm", "--adapter", str(tmp_path), "--vllm-python", str(tmp_path / "none")])
    assert code == 2
    assert "adalink serve: error:" in capsys.readouterr().err
