"""Shared pieces of the performance scripts: side-by-side timing in one process, real text batches, output.

Every script measures its contenders in the same process, alternating them over several rounds (the order rotates
each round, so slow drift of a shared machine hits every contender alike), and reports each contender's median
per-round ratio to a reference measured in the same round. Ratios are higher = better.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

SRC = Path(__file__).resolve().parents[1] / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from adalink.io import write_json_atomic  # noqa: E402
from adalink.provenance import environment  # noqa: E402

__all__ = ["alternate", "base_parser", "emit", "make_step", "minilm_path", "profile_tables", "ratio", "text_batch"]


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds")
    parser.add_argument("--iters", type=int, default=3, help="calls per contender per round")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--json-out", default=None, help="also write the JSON object to this file")
    parser.add_argument("--profile", default=None, help="write torch.profiler tables of the contenders to this file")
    return parser


def profile_tables(contenders: dict[str, Callable[[], Any]], path: str, iters: int = 3) -> None:
    """torch.profiler's top operators (self CPU time) of each contender, written to ``path`` as text."""
    from torch.profiler import ProfilerActivity, profile

    parts = []
    for name, call in contenders.items():
        call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iters):
                call()
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
        parts.append(f"=== {name} ({iters} calls)\n{table}")
    Path(path).write_text("\n\n".join(parts))
    print(f"profile tables written to {path}", file=sys.stderr)


def setup_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def minilm_path() -> str:
    from adalink.models import resolve_model

    return resolve_model("minilm").path


def text_batch(tokenizer, size: int, length: int, task: str = "tweets", offset: int = 0) -> dict[str, torch.Tensor]:
    """``size`` real test texts of a packaged task, padded/truncated to exactly ``length`` tokens."""
    from adalink.data import load_text_task

    texts = [e.text for e in load_text_task(task).test[offset : offset + size]]
    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    return dict(batch)


def make_step(model, batch: dict[str, torch.Tensor], labels: torch.Tensor) -> tuple[Callable[[], None], int]:
    """(one whole training step of ``model`` on ``batch``: forward, loss, backward, gradient clipping, AdamW step,
    zero_grad; its trainable parameter count). The model is put in training mode."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    model.train()

    def step() -> None:
        loss = model(**batch, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, sum(p.numel() for p in params)


def alternate(contenders: dict[str, Callable[[], Any]], rounds: int, iters: int) -> dict[str, list[float]]:
    """Seconds per call of each contender, one value per round; the order rotates every round."""
    names = list(contenders)
    for name in names:  # warm-up (allocator, lazy inits, oneDNN primitive caches)
        contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            began = time.perf_counter()
            for _ in range(iters):
                contenders[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - began) / iters)
    return times


def ratio(times: dict[str, list[float]], name: str, reference: str) -> float:
    """Median over rounds of reference_time / contender_time (throughput ratio, higher = better)."""
    return statistics.median(ref / mine for ref, mine in zip(times[reference], times[name], strict=True))


def emit(result: dict[str, Any], args: argparse.Namespace) -> None:
    """Print a table (or with --json one JSON object); --json-out also writes the object for BENCHMARKS.md."""
    result = {**result, "environment": _env(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.json_out:
        write_json_atomic(Path(args.json_out), result, sort_keys=True)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            print(f"\n{key}:")
            _print_table(value)
    for note in result.get("notes", []):
        print(f"\n{note}")


def _print_table(rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    widths = {k: max(len(k), *(len(_fmt(r.get(k))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for row in rows:
        print("  ".join(_fmt(row.get(k)).ljust(widths[k]) for k in keys))


def _env() -> dict[str, Any]:
    env = environment()
    return {k: env[k] for k in ("cpu", "cpu_count", "torch_threads", "gpu", "torch", "transformers")}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
