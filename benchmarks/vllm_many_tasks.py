"""Many AdaLink tasks at once on vLLM (issue 29, part 4): 1, 8 and 64 tasks mixed in ONE AdaLink-only engine against
the same engine serving the base; the memory of its LoRA slots against ``max_loras x vocab x rank``; latency at a
fixed request rate, base vs 64 tasks mixed.

Adapters: one 64-task AdaLink on SmolLM2-135M-Instruct with random non-zero ``W_down``/``W_up`` (rank 8, written as
`adalink train` writes a run, ``vllm_throughput._random_adalink_run``), exported by
:func:`adalink.serve.vllm_engine.export_for_vllm` as 64 embedding LoRAs. Prompts: ``--requests`` test texts of
tweets and bbc in the text-to-text prompt (at most 64 tokens, ``vllm_throughput._prompts``), each continued for
exactly ``--new-tokens`` tokens (``ignore_eos``), greedy.

1. **Throughput** (offline ``vllm.LLM``, in the vLLM Python: this script re-runs itself with ``--vllm-part``): ONE
   engine as ``vllm_engine`` deploys 64 tasks (LoRA on ``embed_tokens`` only, max_lora_rank 8, max_loras 65 = 64 +
   the spare slot, float32, no prefix caching). Contenders, all the same prompts in one ``generate`` call: ``base``
   (no LoRA), ``tasks1`` (every request task0), ``tasks8`` (request i: task i mod 8), ``tasks64`` (task i mod 64).
   One warm-up call each (vLLM loads the adapters then), then ``--rounds`` rounds in rotating order; every round's
   time is kept. Ratio per round = base time / contender time (same tokens: throughput ratio), reported as mean ± sd
   (and median) over rounds.
2. **LoRA slot memory**: the stacked slot tensors of every LoRA-wrapped module (``*_stacked`` attributes), read in the
   engine's worker (``LLM.apply_model`` with ``_vllm_slots.stacked_tensors``), against ``max_loras x vocab x rank``
   floats (A) and the B side ``max_loras x hidden x rank``.
3. **Latency** (vLLM's OpenAI server started by ``vllm_engine.launch_vllm`` on the same 64-task export): streamed
   completions sent at a fixed rate (``--rate`` requests/s, evenly spaced, ``--latency-requests`` per phase), phases
   alternating base / 64 tasks mixed for ``--latency-rounds`` rounds. Per request: time to first token (TTFT: send to
   the first streamed token) and time per output token (TPOT: first to last token / (tokens - 1)); p50 and p95 over
   all requests of a contender.

Results: ``--out`` (default ``benchmarks/results/vllm/many_tasks.json``), with every round's time and every
request's latencies, the settings, the versions and the load average. ``--mixes 64 --rounds 16 --latency-rounds 0``
times the base and 64 tasks only, in more rounds (each round a base call next to a 64-task call).

    nice -n 5 python benchmarks/vllm_many_tasks.py --vllm-python ~/vllm-venv/bin/python --work-dir /tmp/vllm-many
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vllm_throughput import _alternate, _load, _prompts, _random_adalink_run, _ratios, _versions

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "vllm" / "many_tasks.json"
TASKS = 64
MIXES = (1, 8, 64)  # tasks mixed in one batch (--mixes)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.vllm_part:
        return _vllm_part(Path(args.vllm_part))
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start {_load()}", flush=True)
    spec, deployment = _prepare(work, args)
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "vllm_part"}}
    results["versions"] = _versions(args.vllm_python)
    results["throughput"] = _run_vllm_part(work, args)
    results["throughput_ratios"] = {f"tasks{n}": _ratios(results["throughput"], f"tasks{n}") for n in spec["mixes"]}
    if args.latency_rounds:
        results["latency"] = _latency(deployment, spec, args, work)
    results["load_average_end"] = _load()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    _print_summary(results)
    print(f"load average at end {_load()}; JSON: {args.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", default=os.environ.get("ADALINK_VLLM_PYTHON"), help="Python with vLLM")
    parser.add_argument("--work-dir", default="vllm-many-tasks", help="adapters, prompts and logs go here")
    parser.add_argument("--out", default=str(RESULTS), help="the results JSON")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--requests", type=int, default=64, help="requests per throughput call")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=8, help="throughput rounds after the warm-up")
    parser.add_argument("--rate", type=float, default=1.0, help="latency: requests per second, evenly spaced")
    parser.add_argument("--latency-requests", type=int, default=24, help="latency: requests per phase")
    parser.add_argument("--latency-rounds", type=int, default=2, help="latency: base/mixed phase pairs (0: none)")
    parser.add_argument("--mixes", default=",".join(map(str, MIXES)), help="tasks mixed per contender, e.g. 64")
    parser.add_argument("--kv-cache-gib", default="2", help="VLLM_CPU_KVCACHE_SPACE when it is not set")
    parser.add_argument("--vllm-part", default=None, help=argparse.SUPPRESS)  # internal: the offline engine
    return parser


# ------------------------------------------------------------------------------------------------ set-up (adalink)
def _prepare(work: Path, args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from adalink.models import resolve_model
    from adalink.runs.loading import load_tokenizer
    from adalink.serve.vllm_engine import export_for_vllm

    base = resolve_model(args.model).path
    run = work / f"adalink-{TASKS}-tasks"
    if not (run / "run.json").is_file():
        _random_adalink_run(run, args.model, base, tasks=TASKS)
    deployment = export_for_vllm([run], work / "export")
    spec = {
        "base": base,
        "adapters": {task.name: str(task.adapter) for task in deployment.tasks},
        "max_loras": deployment.max_loras,
        "max_lora_rank": deployment.max_lora_rank,
        "prompts": _prompts(load_tokenizer(base), args.requests),
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "mixes": [int(n) for n in args.mixes.split(",")],
    }
    (work / "spec.json").write_text(json.dumps(spec))
    return spec, deployment


def _run_vllm_part(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)}
    env["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"  # LLM.apply_model sends a function to the worker
    command = [args.vllm_python, __file__, "--vllm-part", str(work / "spec.json")]
    print(f"throughput: {' '.join(command)} (log {work / 'vllm-throughput.log'})", flush=True)
    with open(work / "vllm-throughput.log", "w") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads((work / "vllm-throughput.json").read_text())


# ------------------------------------------------------------------------------------------------ vLLM part
def _vllm_part(spec_file: Path) -> int:
    """Runs under the vLLM Python: one engine, the contenders timed side by side, the slot memory read."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    spec = json.loads(spec_file.read_text())
    settings = {
        "dtype": "float32",
        "enable_lora": True,
        "max_lora_rank": spec["max_lora_rank"],
        "max_loras": spec["max_loras"],  # 64 tasks + the spare slot (see vllm_engine)
        "max_cpu_loras": spec["max_loras"],
        "lora_target_modules": ["embed_tokens"],
        "enable_prefix_caching": False,
        "max_model_len": 256,
        "seed": 0,
    }
    started = time.perf_counter()
    llm = LLM(model=spec["base"], **settings)
    print(f"engine ready in {time.perf_counter() - started:.0f} s with {settings}", flush=True)
    params = SamplingParams(temperature=0, max_tokens=spec["new_tokens"], ignore_eos=True)
    prompts = [{"prompt_token_ids": ids} for ids in spec["prompts"]]
    loras = [LoRARequest(name, i + 1, path) for i, (name, path) in enumerate(spec["adapters"].items())]

    def contender(tasks: int | None):
        def run() -> int:
            chosen = [loras[i % tasks] for i in range(len(prompts))] if tasks else None
            outputs = llm.generate(prompts, params, lora_request=chosen, use_tqdm=False)
            return sum(len(o.outputs[0].token_ids) for o in outputs)

        return run

    contenders = {"base": contender(None), **{f"tasks{n}": contender(n) for n in spec["mixes"]}}
    result = _alternate(contenders, spec["rounds"]) | {"settings": settings}
    (spec_file.parent / "vllm-throughput.json").write_text(json.dumps(result))  # kept if what follows fails
    result["lora_slots"] = _slot_memory(llm, spec)
    (spec_file.parent / "vllm-throughput.json").write_text(json.dumps(result))
    return 0


def _slot_memory(llm, spec: dict[str, Any]) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(spec["base"])
    import _vllm_slots  # beside this file: the worker imports it by name (a function of __main__ does not pickle)

    (tensors,) = llm.apply_model(_vllm_slots.stacked_tensors)
    slots, rank, vocab, hidden = spec["max_loras"], spec["max_lora_rank"], config.vocab_size, config.hidden_size
    return {
        "tensors": tensors,
        "measured_bytes": sum(t["bytes"] for t in tensors.values()),
        "formula_a_bytes": slots * vocab * rank * 4,  # max_loras x vocab x rank float32
        "formula_b_bytes": slots * hidden * rank * 4,  # max_loras x hidden x rank float32
        "max_loras": slots,
        "vocab": vocab,
        "hidden": hidden,
        "rank": rank,
    }


# ------------------------------------------------------------------------------------------------ latency
def _latency(deployment, spec: dict[str, Any], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from adalink.serve.vllm_engine import launch_vllm, wait_for_vllm
    from adalink.serve.vllm_runtime import stop_process_group

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)}
    extra = ["--max-model-len", "256", "--no-enable-prefix-caching", "--max-cpu-loras", str(deployment.max_loras)]
    with open(work / "vllm-server.log", "w") as log:
        process = launch_vllm(
            deployment, port=port, vllm_python=args.vllm_python, extra_args=extra, env=env, stdout=log, stderr=log
        )
        try:
            wait_for_vllm(url, process, timeout=1800)
            names = [task.name for task in deployment.tasks]
            prompts = spec["prompts"]
            phases = {
                "base": [(deployment.base_name, prompts[i % len(prompts)]) for i in range(args.latency_requests)],
                "tasks64": [(names[i % TASKS], prompts[i % len(prompts)]) for i in range(args.latency_requests)],
            }
            asyncio.run(_phase(url, [(names[i], prompts[i]) for i in range(TASKS)], args, rate=8.0))  # warm-up
            records: dict[str, list[dict[str, float]]] = {name: [] for name in phases}
            for r in range(args.latency_rounds):
                order = list(phases) if r % 2 == 0 else list(reversed(phases))
                for name in order:
                    records[name] += asyncio.run(_phase(url, phases[name], args, rate=args.rate))
                    print(f"    latency round {r + 1}: {name} {_summary(records[name])}", flush=True)
        finally:
            stop_process_group(process)
    return {name: {"requests": rows, **_summary(rows)} for name, rows in records.items()}


async def _phase(url: str, requests: list[tuple[str, list[int]]], args: argparse.Namespace, rate: float):
    import httpx

    async with httpx.AsyncClient(timeout=600, trust_env=False) as client:
        began = time.perf_counter()

        async def one(i: int, model: str, prompt: list[int]) -> dict[str, float]:
            await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
            return await _stream(client, url, model, prompt, args.new_tokens)

        return await asyncio.gather(*(one(i, model, prompt) for i, (model, prompt) in enumerate(requests)))


async def _stream(client, url: str, model: str, prompt: list[int], tokens: int) -> dict[str, float]:
    body = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0, "ignore_eos": True}
    body |= {"stream": True, "stream_options": {"include_usage": True}}
    sent = time.perf_counter()
    first = last = None
    count = 0
    async with client.stream("POST", f"{url}/v1/completions", json=body) as answer:
        answer.raise_for_status()
        async for line in answer.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if event.get("usage"):
                count = event["usage"]["completion_tokens"]
            if event.get("choices") and event["choices"][0].get("text") is not None:
                now = time.perf_counter()
                first = first if first is not None else now
                last = now
    assert first is not None and last is not None and count == tokens, (model, count)
    return {"ttft_s": first - sent, "tpot_s": (last - first) / (count - 1), "total_s": last - sent}


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _summary(rows: list[dict[str, float]]) -> dict[str, float]:
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    ttft, tpot = [r["ttft_s"] for r in rows], [r["tpot_s"] for r in rows]
    return {
        "ttft_p50_s": pct(ttft, 0.5),
        "ttft_p95_s": pct(ttft, 0.95),
        "tpot_p50_s": pct(tpot, 0.5),
        "tpot_p95_s": pct(tpot, 0.95),
        "n": len(rows),
    }


# ------------------------------------------------------------------------------------------------ output
def _print_summary(results: dict[str, Any]) -> None:
    throughput = results["throughput"]
    print(f"throughput (tokens/s at the median round; load average {throughput['load_average']})")
    print(f"  base     {throughput['base']['tokens_per_s']:7.1f}  rounds {_seconds(throughput['base'])}")
    for name in results["throughput_ratios"]:
        r = results["throughput_ratios"][name]
        print(
            f"  {name:<8} {throughput[name]['tokens_per_s']:7.1f}  {r['mean']:.3f} ± {r['sd']:.3f}x base (median "
            f"{r['median']:.3f}; per round {', '.join(f'{x:.3f}' for x in r['per_round'])})  rounds "
            f"{_seconds(throughput[name])}"
        )
    slots = throughput["lora_slots"]
    print(
        f"LoRA slots: {slots['measured_bytes'] / 2**20:.1f} MiB measured; max_loras x vocab x rank floats = "
        f"{slots['formula_a_bytes'] / 2**20:.1f} MiB, + max_loras x hidden x rank = "
        f"{slots['formula_b_bytes'] / 2**20:.2f} MiB"
    )
    for name, row in results.get("latency", {}).items():
        print(
            f"latency {name:<8} TTFT p50 {row['ttft_p50_s'] * 1000:7.0f} ms p95 {row['ttft_p95_s'] * 1000:7.0f} ms; "
            f"TPOT p50 {row['tpot_p50_s'] * 1000:6.0f} ms p95 {row['tpot_p95_s'] * 1000:6.0f} ms (n={row['n']})"
        )


def _seconds(row: dict[str, Any]) -> str:
    return " ".join(f"{s:.1f}" for s in row["seconds"])


if __name__ == "__main__":
    sys.exit(main())
