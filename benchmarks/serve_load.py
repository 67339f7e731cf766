"""Load benchmark of `adalink serve` on loopback: a fixed number of requests at a fixed concurrency, three set-ups.

1. ``mixed``: one server with every adapter, dynamic batching (requests of all tasks share forward passes).
2. ``one-at-a-time``: the same server with ``--max-batch-size 1`` (every request has a forward pass of its own).
3. ``per-task processes``: one server process per adapter (each loads its own copy of the base model), batching
   as in 1 but only within its task.

Every server process gets ``--threads`` torch threads (default 1: on a shared CPU, several threads per process
stall whenever another process takes a core), so set-up 3 uses one thread per task; the table shows each set-up's
processes and threads. All servers start first; the timed requests are then sent in ``--rounds`` rounds that visit
the set-ups in rotating order, so a change in the machine's load hits every set-up alike, and each ratio is the
median of its per-round ratios. Requests carry one input each and alternate between the tasks; their texts come
from the tasks' packaged test splits where the task is packaged (``adalink.data``), else from a fixed list. It
stops by itself. Prints throughput, p50/p99 latency, errors, the mean examples and tasks per forward pass (from
``/metrics``), the servers' resident memory and the ratios; ``--json`` prints JSON, ``--json-out`` writes it.

    python benchmarks/serve_load.py --adapter runs/tweets --adapter runs/bbc --requests 600 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

FALLBACK_TEXTS = [
    "What a lovely day, the service was great",
    "The film was long and the ending made no sense",
    "Shares fell sharply after the bank cut its forecast",
    "The striker scored twice in the second half",
    "I am not sure this new phone is worth the price",
    "Parliament voted on the budget late on Tuesday night",
]


@dataclass
class Result:
    setup: str
    requests: int
    concurrency: int
    errors: int
    seconds: float
    throughput: float  # requests per second
    p50_ms: float
    p99_ms: float
    mean_batch_size: float
    mean_tasks_per_batch: float
    processes: int
    threads: int  # torch threads of all its server processes together
    rss_mb: float  # resident memory of the server processes, summed


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tasks_of(directory: str) -> list[str]:
    return [t["name"] for t in json.loads((Path(directory) / "run.json").read_text())["tasks"]]


def _texts(task: str, count: int, seed: int) -> list[str]:
    from adalink.data import TASK_NAMES, load_text_task

    texts = [e.text for e in load_text_task(task).test] if task in TASK_NAMES else FALLBACK_TEXTS
    random.Random(seed).shuffle(texts)
    return [texts[i % len(texts)] for i in range(count)]


class Server:
    """One `adalink serve` process on a free loopback port."""

    def __init__(self, adapters: list[str], model: str | None, threads: int, extra: list[str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "adalink", "serve", "--port", str(self.port), "--threads", str(threads)]
        command += ["--no-access-log", "--log-level", "warning", *extra]
        for adapter in adapters:
            command += ["--adapter", adapter]
        if model:
            command += ["--model", model]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)

    def wait_ready(self, seconds: float = 600) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become healthy")

    def batch_stats(self) -> tuple[float, float, float]:
        """(forward passes, examples, task-slots) so far, from /metrics."""
        values = {}
        for line in httpx.get(f"{self.url}/metrics").text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("adalink_batch_size_count", "adalink_batch_size_sum", "adalink_batch_tasks_sum"):
                values[name] = float(value)
        return (
            values.get("adalink_batch_size_count", 0.0),
            values.get("adalink_batch_size_sum", 0.0),
            values.get("adalink_batch_tasks_sum", 0.0),
        )

    def rss_mb(self) -> float:
        try:
            import psutil
        except ImportError:
            return float("nan")
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _load(requests: list[tuple[str, str, str]], concurrency: int) -> tuple[list[float], int, float]:
    """Send (url, task, text) requests with ``concurrency`` workers; returns latencies (s), errors, wall time."""
    latencies: list[float] = []
    errors = 0
    queue = iter(requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for url, task, text in queue:
                began = time.perf_counter()
                try:
                    response = await client.post(f"{url}/v1/classify", json={"task": task, "inputs": [text]})
                    ok = response.status_code == 200 and response.json()["data"][0]["label"] is not None
                except (httpx.HTTPError, ValueError, KeyError):
                    ok = False
                latencies.append(time.perf_counter() - began)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - began


class Setup:
    """One way of serving the tasks: its server processes, and what the timed rounds measured."""

    def __init__(self, name: str, groups: list[list[str]], args, extra: list[str]) -> None:
        self.name, self.threads = name, args.threads * len(groups)
        self.servers = [Server(group, args.model, args.threads, extra) for group in groups]
        self.route = {
            task: server.url
            for server, group in zip(self.servers, groups, strict=True)
            for adapter in group
            for task in _tasks_of(adapter)
        }
        self.latencies: list[float] = []
        self.errors, self.seconds = 0, 0.0
        self.round_throughput: list[float] = []

    def plan(self, texts: dict[str, list[str]], start: int, count: int) -> list[tuple[str, str, str]]:
        """Requests ``start .. start + count`` of the common sequence: the tasks in turn, each with its next text."""
        tasks = list(texts)
        return [
            (self.route[tasks[i % len(tasks)]], tasks[i % len(tasks)], texts[tasks[i % len(tasks)]][i // len(tasks)])
            for i in range(start, start + count)
        ]

    def run(self, plan: list[tuple[str, str, str]], concurrency: int) -> None:
        latencies, errors, seconds = asyncio.run(_load(plan, concurrency))
        self.latencies += latencies
        self.errors += errors
        self.seconds += seconds
        self.round_throughput.append(len(plan) / seconds)

    def batch_stats(self) -> list[float]:
        totals = [0.0, 0.0, 0.0]
        for server in self.servers:
            totals = [t + v for t, v in zip(totals, server.batch_stats(), strict=True)]
        return totals

    def result(self, concurrency: int, before: list[float], after: list[float]) -> Result:
        passes, examples, task_slots = (a - b for a, b in zip(after, before, strict=True))
        ordered = sorted(self.latencies)
        return Result(
            setup=self.name,
            requests=len(ordered),
            concurrency=concurrency,
            errors=self.errors,
            seconds=round(self.seconds, 3),
            throughput=round(len(ordered) / self.seconds, 2),
            p50_ms=round(1000 * statistics.median(ordered), 1),
            p99_ms=round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
            mean_batch_size=round(examples / max(passes, 1), 2),
            mean_tasks_per_batch=round(task_slots / max(passes, 1), 2),
            processes=len(self.servers),
            threads=self.threads,
            rss_mb=round(sum(server.rss_mb() for server in self.servers), 1),
        )


def measure(setups: list[Setup], texts: dict[str, list[str]], args) -> list[Result]:
    """Warm every set-up up, then run the timed rounds, visiting the set-ups in rotating order."""
    for setup in setups:
        for server in setup.servers:
            server.wait_ready()
        setup.run(setup.plan(texts, 0, args.warmup), args.concurrency)
        setup.latencies, setup.errors, setup.seconds, setup.round_throughput = [], 0, 0.0, []
    before = [setup.batch_stats() for setup in setups]
    per_round = args.requests // args.rounds
    for round_ in range(args.rounds):
        start = args.warmup + round_ * per_round
        for setup in setups[round_ % len(setups) :] + setups[: round_ % len(setups)]:
            setup.run(setup.plan(texts, start, per_round), args.concurrency)
    return [s.result(args.concurrency, b, s.batch_stats()) for s, b in zip(setups, before, strict=True)]


def _median_ratio(a: Setup, b: Setup) -> float:
    return round(statistics.median(x / y for x, y in zip(a.round_throughput, b.round_throughput, strict=True)), 2)


def _environment(threads: int, load_before: tuple, load_after: tuple) -> dict[str, str]:
    import platform

    import torch

    return {
        "CPU": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs",
        "torch threads per server process": str(threads),
        "torch": torch.__version__,
        "load average (1 min) before / after": f"{load_before[0]:.1f} / {load_after[0]:.1f}",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", action="append", required=True, help="an `adalink train` run (repeat)")
    parser.add_argument("--model", default=None, help="base model (default: the runs' own)")
    parser.add_argument("--requests", type=int, default=600, help="timed requests per set-up")
    parser.add_argument("--warmup", type=int, default=64, help="requests sent first and not counted")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--window-ms", type=float, default=5.0, help="batch window of the batching set-ups")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server process")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds, each visiting every set-up")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--json-out", default=None, help="also write them here (benchmarks/results/serve_load.json)")
    args = parser.parse_args(argv)
    if len(args.adapter) < 2:
        parser.error("give at least two adapters (--adapter DIR --adapter DIR)")
    batching = ["--batch-window-ms", str(args.window_ms), "--max-batch-size", str(args.max_batch_size)]
    load_before = os.getloadavg()
    tasks = [task for adapter in args.adapter for task in _tasks_of(adapter)]
    texts = {task: _texts(task, args.warmup + args.requests, seed=i) for i, task in enumerate(tasks)}
    setups: list[Setup] = []
    try:
        setups.append(Setup("mixed", [args.adapter], args, batching))
        setups.append(Setup("one-at-a-time", [args.adapter], args, ["--batch-window-ms", "0", "--max-batch-size", "1"]))
        setups.append(Setup("per-task processes", [[a] for a in args.adapter], args, batching))
        results = measure(setups, texts, args)
    finally:
        for setup in setups:
            for server in setup.servers:
                server.stop()
    load_after = os.getloadavg()
    mixed, single, separate = setups
    ratios = {
        "throughput_mixed_over_one_at_a_time": _median_ratio(mixed, single),
        "throughput_mixed_over_per_task_processes": _median_ratio(mixed, separate),
        "p99_mixed_over_one_at_a_time": round(results[0].p99_ms / results[1].p99_ms, 2),
        "p99_mixed_over_per_task_processes": round(results[0].p99_ms / results[2].p99_ms, 2),
        "memory_mixed_over_per_task_processes": round(results[0].rss_mb / results[2].rss_mb, 2),
    }
    document = {
        "results": [asdict(r) for r in results],
        **ratios,
        "command": "python benchmarks/serve_load.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "notes": [
            "Each request carries one input; requests alternate between the tasks. Latency is measured by the "
            "client from sending to the parsed answer; errors are non-200 answers, failed connections and answers "
            "without a label. `batch` is the mean number of examples per forward pass and `tasks/b` the mean "
            "number of distinct tasks in one forward pass, both from the servers' /metrics over the timed run. "
            f"Every server process has {args.threads} torch thread(s); the {args.rounds} timed rounds visit the "
            "set-ups in rotating order and each throughput ratio is the median of the per-round ratios. The load "
            "generator runs on the same machine.",
        ],
        "environment": _environment(args.threads, load_before, load_after),
    }
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n")
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    columns = ("req/s", "p50 ms", "p99 ms", "errors", "batch", "tasks/b", "procs", "threads", "RSS MB")
    print(f"{'set-up':<20} " + " ".join(f"{c:>8}" for c in columns))
    for r in results:
        print(
            f"{r.setup:<20} {r.throughput:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.errors:>8d} "
            f"{r.mean_batch_size:>8.2f} {r.mean_tasks_per_batch:>8.2f} {r.processes:>8d} {r.threads:>8d} "
            f"{r.rss_mb:>8.0f}"
        )
    for name, value in ratios.items():
        print(f"{name}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
