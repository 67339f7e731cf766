"""Why the standard bench's training memory and ``train_cost.py``'s differ, measured: the same method trained the same
steps at batch 16 x 64 tokens, (a) through ``adalink train``'s harness (the bench worker's ``--memory-only`` run of
the method's first standard-bench run on each of ``--tasks``: real batches, whose lengths vary on tweets and are all
64 tokens on bbc, whose articles are longer) and (b) by ``train_cost.py``'s bare
loop on one fixed batch, each in a fresh process, with glibc's default allocator settings and with its mmap threshold
fixed (``MALLOC_MMAP_THRESHOLD_=131072``: glibc then hands every freed tensor above 128 KiB back to the system
instead of raising the threshold and keeping freed tensors in its heap). Memory = peak RSS over the steps minus the
RSS before the model, as both scripts define it.

    python benchmarks/memory_gap.py [--methods adalink,full,houlsby,mam] [--tasks tweets] [--steps 30] [--json-out F]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from _common import base_parser, emit

from adalink.bench.aggregate import load_results
from adalink.bench.grid import default_method_config
from adalink.bench.train_memory import measurement_spec

HERE = Path(__file__).resolve().parent
ALLOCATORS = {"glibc default": {}, "mmap threshold 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072"}}


def harness_memory(method: str, task: str, steps: int, env: dict[str, str], results: Path) -> int:
    """The bench worker's training-only memory of ``method``'s first standard ``task`` run at today's config."""
    runs = [
        r
        for r in load_results(results)
        if r["status"] == "ok"
        and r["spec"]["profile"] == "standard"
        and r["spec"]["task"] == task
        and r["spec"]["method"] == method
        and r["spec"]["method_config"] == default_method_config(method)
    ]
    if not runs:
        raise SystemExit(f"memory_gap: no standard {task} run of {method!r} at today's config in {results}")
    spec = replace(measurement_spec(min(runs, key=lambda r: r["spec"]["seed"])["spec"], steps), threads=1)
    with tempfile.TemporaryDirectory(prefix="memory-gap-") as tmp:
        spec_file, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec.to_dict()))
        command = [sys.executable, "-m", "adalink.bench.worker", "--memory-only", str(spec_file), str(out)]
        subprocess.run(command, env=env, capture_output=True, check=True)
        document = json.loads(out.read_text())
    if document["status"] != "ok":
        raise SystemExit(f"memory_gap: the harness run of {method} failed: {document.get('error')}")
    return document["train_memory_bytes"]


def bare_memory(method: str, steps: int, env: dict[str, str]) -> int:
    """``train_cost.py``'s child: ``steps`` steps of one fixed batch of 16 x 64 tokens."""
    command = [sys.executable, str(HERE / "train_cost.py"), "--child-memory", method, "--batch", "16"]
    command += ["--length", "64", "--threads", "1", "--memory-steps", str(steps)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])["memory_bytes"]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--methods", default="adalink,full,houlsby,mam", help="comma-separated methods")
    parser.add_argument("--steps", type=int, default=30, help="training steps of every run")
    parser.add_argument("--results", default=str(HERE / "results"), help="the standard bench's run files")
    parser.add_argument("--tasks", default="tweets", help="comma-separated standard-bench tasks of the harness runs")
    args = parser.parse_args()
    rows = []
    tasks = [t.strip() for t in args.tasks.split(",")]
    for method in [m.strip() for m in args.methods.split(",")]:
        for allocator, extra in ALLOCATORS.items():
            env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1", **extra)
            bare = bare_memory(method, args.steps, env)  # one fixed batch: the same whatever the task
            for task in tasks:
                harness = harness_memory(method, task, args.steps, env, Path(args.results))
                print(
                    f"memory_gap: {method}, {task}, {allocator}: harness {harness / 2**20:.0f} MiB, "
                    f"bare {bare / 2**20:.0f} MiB"
                )
                rows.append(
                    {
                        "method": method,
                        "task": task,
                        "allocator": allocator,
                        "harness_mib": harness / 2**20,
                        "bare_loop_mib": bare / 2**20,
                        "difference_mib": (harness - bare) / 2**20,
                    }
                )
    emit({"script": "memory_gap", "steps": args.steps, "batch": 16, "length": 64, "rows": rows}, args)


if __name__ == "__main__":
    main()
