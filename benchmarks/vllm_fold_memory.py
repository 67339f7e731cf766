"""What ``adalink serve --engine vllm --fold`` costs per task, on SmolLM2-135M-Instruct (issue 29, part 3).

A random 2-task AdaLink (rank 8, ``vllm_throughput._random_adalink_run``) is served with ``--fold`` (one vLLM engine
per task, ``--vllm-kv-cache-gib`` each). Once it reports ready, the script reads, for every engine, the proportional
set size (PSS, shared pages split between the processes that map them) of every process of its process group
(/proc/PID/smaps_rollup), and the machine's ``MemAvailable`` before the start and while serving; it sends one greedy
request per task through the one endpoint and compares the tokens with adalink's own engine (``AdapterStack``) on
the unfolded run; then SIGTERM, and the time until ``adalink serve`` exits. Results: ``--out`` (default
``benchmarks/results/vllm/fold_memory.json``).

    nice -n 5 python benchmarks/vllm_fold_memory.py --vllm-python ~/vllm-venv/bin/python --work-dir /tmp/vllm-fold
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_throughput import _load, _prompts, _random_adalink_run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "vllm" / "fold_memory.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", default=os.environ.get("ADALINK_VLLM_PYTHON"), help="Python with vLLM")
    parser.add_argument("--work-dir", default="vllm-fold-memory")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args(argv)

    from adalink.models import resolve_model
    from adalink.runs.loading import load_tokenizer
    from adalink.serve import AdapterStack

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    base = resolve_model(args.model).path
    run = work / "adalink-2-tasks"
    if not (run / "run.json").is_file():
        _random_adalink_run(run, args.model, base, tasks=2)
    prompts = _prompts(load_tokenizer(base), 2)
    stack = AdapterStack.from_runs([run], device="cpu")
    expected = [
        c.token_ids for c in stack.complete([(f"task{i}", ids, args.new_tokens) for i, ids in enumerate(prompts)])
    ]
    del stack

    port = _free_port()
    command = [sys.executable, "-m", "adalink", "serve", "--engine", "vllm", "--fold", "--adapter", str(run)]
    command += ["--port", str(port), "--vllm-python", args.vllm_python, "--vllm-kv-cache-gib", str(args.kv_cache_gib)]
    available_before = _mem_available()
    started = time.perf_counter()
    log_path = work / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(work)}
        )
    try:
        ready = _wait_ready(log_path, process)
        ready_s = time.perf_counter() - started
        time.sleep(5)  # let the engines settle after their warm-up
        engines = {task: int(pid) for task, pid in re.findall(r"(\w+) \(pid (\d+)\)", ready)}
        pss = {task: _group_pss(pid) for task, pid in engines.items()}
        available_serving = _mem_available()
        got = [_complete(port, f"task{i}", ids, args.new_tokens) for i, ids in enumerate(prompts)]
        eos = load_tokenizer(base).eos_token_id
        equal = [[t for t in g if t != eos] == [t for t in e if t != eos] for g, e in zip(got, expected, strict=True)]
        process.send_signal(signal.SIGTERM)
        stopping = time.perf_counter()
        code = process.wait(timeout=120)
        stop_s = time.perf_counter() - stopping
    finally:
        if process.poll() is None:
            process.kill()
    result: dict[str, Any] = {
        "settings": vars(args),
        "ready_s": ready_s,
        "engine_pss_bytes": pss,
        "mem_available_before_bytes": available_before,
        "mem_available_serving_bytes": available_serving,
        "greedy_equal_to_adalink": equal,
        "exit_code": code,
        "stop_s": stop_s,
        "load_average_end": _load(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    gib = 1 << 30
    for task, groups in pss.items():
        print(f"engine {task}: PSS {sum(groups.values()) / gib:.2f} GiB over {len(groups)} processes")
    print(f"MemAvailable {available_before / gib:.2f} GiB before, {available_serving / gib:.2f} GiB serving")
    print(f"ready after {ready_s:.0f} s; greedy tokens equal to adalink's engine: {equal}; SIGTERM: exit {code} in")
    print(f"{stop_s:.1f} s; load average {_load()}; JSON: {args.out}")
    return 0


def _wait_ready(log_path: Path, process: subprocess.Popen, timeout: float = 1800) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text().splitlines():
            if "vLLM ready" in line:
                return line
        if process.poll() is not None:
            raise RuntimeError(f"adalink serve exited with {process.returncode}; see {log_path}")
        time.sleep(2)
    raise RuntimeError(f"not ready within {timeout} s; see {log_path}")


def _group_pss(group: int) -> dict[str, int]:
    """PSS in bytes of every live process of process group ``group``: {"pid command": bytes}."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group:
                continue
            rollup = (stat.parent / "smaps_rollup").read_text()
            name = (stat.parent / "comm").read_text().strip()
        except OSError:
            continue
        kib = int(re.search(r"^Pss:\s+(\d+) kB", rollup, re.M).group(1))
        found[f"{stat.parent.name} {name}"] = kib * 1024
    return found


def _mem_available() -> int:
    line = next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemAvailable:"))
    return int(line.split()[1]) * 1024


def _complete(port: int, model: str, prompt: list[int], tokens: int) -> list[int]:
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "return_token_ids": True}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=600) as answer:
        return json.load(answer)["choices"][0]["token_ids"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
