"""`adalink serve --engine vllm` refuses what vLLM would not serve exactly, refuses to report ready when vLLM ignores
an adapter, and stops with every process it started. A stand-in for vLLM (``fake_vllm.py``: an OpenAI-style server
with an engine and a worker process) runs wherever the tests run; the real vLLM is in test_vllm_engine.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from adalink.cli import main
from adalink.runs.reading import read_run
from adalink.serve.vllm_engine import VllmUnsupportedFamilyError, export_for_vllm
from adalink.serve.vllm_matrix import VERDICTS
from serve_support import alive as _alive
from serve_support import fake_vllm_python as _fake_vllm_python
from serve_support import free_port
from serve_support import port_free as _port_free


def test_the_measured_matrix_keeps_the_llama_family_on_vllm():
    assert VERDICTS["LlamaForCausalLM"][0] == "exact"  # SmolLM2, and the base of the real-vLLM test


def test_a_family_vllm_does_not_serve_exactly_is_refused_before_export(text2text_runs, tmp_path, monkeypatch):
    base = tmp_path / "qwen2"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"}))
    run = tmp_path / "run"
    shutil.copytree(text2text_runs["topic"], run)
    (run / "run.json").write_text(json.dumps({**read_run(run), "model_path": str(base)}))
    said = "expected target modules in {'q_proj'} but received ['model.embed_tokens']"
    monkeypatch.setitem(VERDICTS, "Qwen2ForCausalLM", ("refused", said))
    with pytest.raises(VllmUnsupportedFamilyError) as refused:
        export_for_vllm([run], tmp_path / "out")
    message = str(refused.value)
    assert "Qwen2ForCausalLM" in message and said in message
    assert "--engine adalink" in message and "adalink merge" in message
    assert "`adalink serve --engine vllm --fold` (each task folded into a plain checkpoint" in message
    assert not (tmp_path / "out").exists()
    monkeypatch.setitem(VERDICTS, "Qwen2ForCausalLM", ("ignored", ""))
    with pytest.raises(VllmUnsupportedFamilyError, match="ignores it"):
        export_for_vllm([run], tmp_path / "out")


def test_an_adapter_vllm_ignores_stops_the_server_before_it_is_reported_ready(
    text2text_runs, tmp_path, monkeypatch, capsys
):
    task = read_run(text2text_runs["topic"])["tasks"][0]["name"]
    monkeypatch.setenv("FAKE_VLLM_IGNORED", task)
    monkeypatch.setenv("FAKE_VLLM_PIDS", str(tmp_path / "pids.json"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    port = free_port()
    args = ["serve", "--engine", "vllm", "--adapter", str(text2text_runs["topic"]), "--port", str(port)]
    assert main([*args, "--vllm-python", _fake_vllm_python(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert f"vLLM loaded the adapters of {[task]} but answers the base model's output" in captured.err
    assert "--engine adalink" in captured.err and "--fold" in captured.err and "vLLM ready" not in captured.out
    assert not any(_alive(pid) for pid in json.loads((tmp_path / "pids.json").read_text()))
    assert _port_free(port) and not list(tmp_path.glob("adalink-vllm-*"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_vllm_with_its_children_and_removes_the_export(text2text_runs, tmp_path, signum):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path), "FAKE_VLLM_PIDS": str(tmp_path / "p.json")}
    command = [sys.executable, "-m", "adalink", "serve", "--engine", "vllm", "--port", str(port)]
    command += ["--adapter", str(text2text_runs["topic"]), "--vllm-python", _fake_vllm_python(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        for line in process.stdout:  # the probe passed: every adapter changes the output
            lines.append(line)
            if "vLLM ready" in line:
                break
        assert "vLLM ready" in lines[-1], "".join(lines)
        assert list(tmp_path.glob("adalink-vllm-*"))  # the exported adapters, while it serves
        pids = json.loads((tmp_path / "p.json").read_text())  # the server, its engine and its SIGTERM-proof worker
        assert all(_alive(pid) for pid in pids)
        started = time.monotonic()
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
        # SIGTERM to the group, SIGKILL after 5 s for the worker that ignores it, then Python's exit (8.6 s at load 10
        # on 2 cores): bounded, not a hang
        assert time.monotonic() - started < 30
        assert not any(_alive(pid) for pid in pids)
        assert _port_free(port) and not list(tmp_path.glob("adalink-vllm-*"))
        assert f"{signal.Signals(signum).name}: stopping vLLM" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
