"""A running vLLM server: the probe that proves every adapter changes the output, and stopping its process tree.

vLLM can load a LoRA and ignore it (a text-only LoRA on a multimodal wrapper, vLLM issue #48019): the server starts,
every task name answers, and every answer is the base model's. :func:`probe_adapters` asks the base and each task for
one greedy token with its top logprobs and refuses a task whose distribution is the base's. The verdicts measured per
architecture (:mod:`.vllm_matrix`) refuse the known cases before start-up; the probe catches the unmeasured ones.

vLLM's server runs its engine and workers in processes of their own. :func:`launch_vllm <.vllm_engine.launch_vllm>`
starts it in a new session, so the server and everything it starts share one process group, and
:func:`stop_process_group` ends them all: SIGTERM, then SIGKILL for whatever is left after ``grace`` seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AdalinkError
from .vllm_engine import VllmDeployment, VllmError
from .vllm_families import FOLD_INSTEAD

__all__ = [
    "PROBE_PROMPT",
    "EngineProcesses",
    "VllmIgnoredAdapterError",
    "probe_adapters",
    "run_engines",
    "stop_on_signals",
    "stop_process_group",
]

PROBE_PROMPT = "The quick brown fox jumps over the lazy dog. The answer is"
PROBE_TOLERANCE = 1e-4  # largest logprob difference still called "unchanged" (float noise between two requests)


class VllmIgnoredAdapterError(VllmError):
    """vLLM serves a task name but answers the base model's output for it."""


def probe_adapters(base_url: str, deployment: VllmDeployment, *, timeout: float = 120.0) -> None:
    """Ask the base and then each task for one greedy token with its top 5 logprobs, one request at a time.

    Raises:
        VllmIgnoredAdapterError: A task's top logprobs equal the base's (within :data:`PROBE_TOLERANCE`).
    """
    base = _top_logprobs(base_url, deployment.base_name, timeout)
    ignored = [task.name for task in deployment.tasks if _same(_top_logprobs(base_url, task.name, timeout), base)]
    if ignored:
        raise VllmIgnoredAdapterError(
            f"vLLM loaded the adapters of {ignored} but answers the base model's output for them (probe: one greedy "
            f"token of {PROBE_PROMPT!r}, top 5 logprobs equal to the base's): vLLM ignores these LoRAs on "
            f"{deployment.base_model}, or the adapters are zero (an untrained run). Not serving a silent no-op; "
            f"what works instead: {FOLD_INSTEAD}"
        )


def _top_logprobs(base_url: str, model: str, timeout: float) -> dict[str, float]:
    body = {"model": model, "prompt": PROBE_PROMPT, "max_tokens": 1, "temperature": 0, "logprobs": 5}
    request = urllib.request.Request(
        f"{base_url}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer: dict[str, Any] = json.load(response)
    return dict(answer["choices"][0]["logprobs"]["top_logprobs"][0])


def _same(one: dict[str, float], other: dict[str, float]) -> bool:
    return one.keys() == other.keys() and all(abs(one[k] - other[k]) <= PROBE_TOLERANCE for k in one)


def stop_process_group(process: subprocess.Popen, *, grace: float = 5.0) -> None:
    """End ``process`` (started with ``start_new_session=True``) and every process of its group.

    SIGTERM to the group, then SIGKILL to what is left after ``grace`` seconds; returns once none is left (or 5 s
    after the SIGKILL), with ``process`` reaped.
    """
    group = process.pid
    for signum, seconds in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        if not _group_alive(group, process):
            break
        _signal_group(group, signum)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and _group_alive(group, process):
            time.sleep(0.05)
    process.wait()


def _group_alive(group: int, leader: subprocess.Popen) -> bool:
    """Whether a process of ``group`` still runs; zombies do not count (their parent, or init, reaps them)."""
    leader.poll()  # reap the leader, our child
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: a member exists, zombie or not
        return True
    for stat in proc.glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


def _signal_group(group: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


class _Stop(Exception):
    """Raised in the main thread by SIGTERM or SIGINT while :func:`stop_on_signals` is active."""


@contextmanager
def stop_on_signals() -> Iterator[type[Exception]]:
    """While active, SIGTERM and SIGINT raise the exception class this yields in the main thread (catch it, and
    clean up in ``finally``; a second signal does not interrupt that clean-up); the previous handlers come back
    afterwards."""
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise _Stop(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield _Stop
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@dataclass
class EngineProcesses:
    """What one ``adalink serve --engine vllm`` owns: the vLLM processes it started (by name) and its temporary
    directory (exported or folded weights)."""

    directory: str
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)


def run_engines(prefix: str, body: Callable[[EngineProcesses], int], *, engines_name: str | None = None) -> int:
    """``body(owned)`` with a fresh temporary directory; returns its exit code, 2 after a refusal (an
    :class:`AdalinkError`, printed on one line; anything else keeps its traceback) and 0 after SIGTERM/SIGINT. Every
    process group ``body`` started is stopped and the directory removed, whatever happened. ``engines_name`` names
    the processes in the stop message (default: "N vLLM engine(s)")."""
    owned = EngineProcesses(tempfile.mkdtemp(prefix=prefix))
    with stop_on_signals() as stop:
        try:
            return body(owned)
        except AdalinkError as err:
            print(f"adalink serve: error: {err}", file=sys.stderr)
            return 2
        except stop as signalled:
            what = engines_name or f"{len(owned.processes)} vLLM engine(s)"
            print(f"adalink serve: {signalled}: stopping {what}", file=sys.stderr, flush=True)
            return 0
        finally:
            for process in owned.processes.values():
                stop_process_group(process)
            shutil.rmtree(owned.directory, ignore_errors=True)
