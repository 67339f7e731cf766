"""Throughput on vLLM: the base model vs an 8-task AdaLink mixed batch vs an 8-adapter LoRA mixed batch (issue 13,
part 5), and the same AdaLink adapters on adalink's own engine for comparison.

Adapters (random, rank 8, on SmolLM2-135M-Instruct): one 8-task AdaLink with random non-zero ``W_down``/``W_up``,
saved as an adalink run and exported by :mod:`adalink.serve.vllm_engine` as 8 embedding LoRAs; 8 peft LoRAs on
``q_proj, v_proj`` (``init_lora_weights=False``: random non-zero A and B). Requests: ``--requests`` test texts of
tweets and bbc in the text-to-text prompt (at most 64 tokens), each continued for exactly ``--new-tokens`` tokens
(vLLM: ``ignore_eos``), greedy. Request i uses AdaLink task i mod 8, or LoRA i mod 8.

vLLM (this script re-runs itself under ``--vllm-python`` with ``--vllm-part``, one process per engine):

- engine ``shared``: ONE engine with the SAME settings for all three contenders: LoRA enabled, max_lora_rank 8,
  max_loras 17 (16 adapters + the spare slot, see vllm_engine), LoRA target modules embed_tokens, q_proj, v_proj,
  float32, no prefix caching (the rounds repeat the prompts); contenders: base (no LoRA), AdaLink mixed, LoRA mixed.
- engine ``adalink``: as ``vllm_engine`` deploys AdaLink (LoRA on embed_tokens only, max_loras 9): base vs AdaLink.

adalink serve's engine (``AdapterStack.complete``, offline, ``--threads`` torch threads; vLLM's CPU worker runs on
one core and reserves the other): AdaLink mixed vs its base (adapters disabled). HF ``generate`` steps every row of
the batch until the last one ends, so its cost is that of ``--new-tokens`` per row unless every row stops early.

Each contender runs once to warm up (vLLM loads the adapters then), then ``--rounds`` rounds in rotating order;
tokens/s use the median time, ratios the median of the per-round ratios. The load average is printed.

    python benchmarks/vllm_throughput.py --vllm-python ~/vllm-venv/bin/python --work-dir /tmp/vllm-throughput
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS = 8
RANK = 8


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.vllm_part:
        return _vllm_part(Path(args.vllm_part), args.engine)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start {_load()}", flush=True)
    spec = _prepare(work, args)
    results: dict[str, Any] = {"settings": {k: v for k, v in vars(args).items() if k != "vllm_part"}}
    results["adalink_serve"] = _adalink_engine(spec, args)
    _print_engine("adalink serve (AdapterStack)", results["adalink_serve"], reference="base")
    for engine in ("shared", "adalink"):
        results[f"vllm_{engine}"] = _run_vllm(spec, work, engine, args)
        _print_engine(f"vLLM engine {engine!r}", results[f"vllm_{engine}"], reference="base")
    _print_summary(results)
    (work / "throughput.json").write_text(json.dumps(results, indent=2))
    print(f"load average at end {_load()}; JSON: {work / 'throughput.json'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", default=os.environ.get("ADALINK_VLLM_PYTHON"), help="Python with vLLM")
    parser.add_argument("--work-dir", default="vllm-throughput", help="adapters, prompts and results go here")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of adalink's engine")
    parser.add_argument("--kv-cache-gib", default="2", help="VLLM_CPU_KVCACHE_SPACE when it is not set")
    parser.add_argument("--vllm-part", default=None, help=argparse.SUPPRESS)  # internal: run one vLLM engine
    parser.add_argument("--engine", default="shared", help=argparse.SUPPRESS)
    return parser


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg()) + f" (1/5/15 min) on {os.cpu_count()} CPUs"


# ------------------------------------------------------------------------------------------------ set-up (adalink)
def _prepare(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Random adapters (reused when present), the prompts, and what the vLLM part needs, in ``work/spec.json``."""
    from adalink.models import resolve_model
    from adalink.runs.loading import load_tokenizer
    from adalink.serve.vllm_engine import export_for_vllm

    base = resolve_model(args.model).path
    tokenizer = load_tokenizer(base)
    run = work / "adalink-8-tasks"
    if not (run / "run.json").is_file():
        _random_adalink_run(run, args.model, base)
    loras = [work / "lora-qv" / f"lora{i}" for i in range(TASKS)]
    if not all((d / "adapter_config.json").is_file() for d in loras):
        _random_loras(loras, base)
    deployment = export_for_vllm([run], work / "export")
    spec = {
        "base": base,
        "adalink_run": str(run),
        "adalink": {task.name: str(task.adapter) for task in deployment.tasks},
        "lora": {d.name: str(d) for d in loras},
        "prompts": _prompts(tokenizer, args.requests),
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
    }
    (work / "spec.json").write_text(json.dumps(spec))
    return spec


def _random_adalink_run(out: Path, model: str, base_path: str, tasks: int = TASKS) -> None:
    """A ``tasks``-task AdaLink with random non-zero weights, written as `adalink train` writes a run."""
    import torch
    from transformers import AutoModelForCausalLM

    from adalink import AdaLinkConfig, get_peft_model
    from adalink.tasks.formats import TaskInfo, TextToTextFormat
    from adalink.training.args import TrainArgs
    from adalink.training.outputs import save_outputs

    names = [f"task{i}" for i in range(tasks)]
    torch.manual_seed(0)  # W_down: the config's random init
    peft_model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base_path), AdaLinkConfig(rank=RANK, dropout=0.0, tasks=names)
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bank in peft_model.adalink.values():  # W_up starts at zero: make it non-zero, as training would
            bank.up.copy_(torch.randn(bank.up.shape, generator=generator) * 0.05)
    fmt = TextToTextFormat([TaskInfo(name, ("yes", "no")) for name in names], encoder_decoder=False)
    args = TrainArgs(model=model, task=",".join(names), rank=RANK, dropout=0.0, format="text2text", max_steps=0)
    save_outputs(out, args, base_path, fmt, peft_model, {"note": "random weights, not trained"})


def _random_loras(directories: list[Path], base_path: str) -> None:
    import peft
    import torch
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_path)
    for i, directory in enumerate(directories):
        torch.manual_seed(100 + i)
        config = peft.LoraConfig(
            r=RANK, lora_alpha=RANK, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
        )
        model = peft.get_peft_model(base, config)
        model.save_pretrained(directory)
        base = model.unload()


def _prompts(tokenizer, count: int) -> list[list[int]]:
    from adalink.data import load_text_task
    from adalink.tasks.formats import TaskInfo, TextToTextFormat

    texts = [e.text for task in ("tweets", "bbc") for e in load_text_task(task).test[: count // 2 + 1]]
    texts = [texts[(i // 2) + (i % 2) * (len(texts) // 2)] for i in range(count)]  # tweets and bbc alternate
    fmt = TextToTextFormat([TaskInfo(f"task{i}", ("yes", "no")) for i in range(TASKS)], encoder_decoder=False)
    return [fmt.prompt_ids(tokenizer, i % TASKS, text, 64) for i, text in enumerate(texts)]


# ------------------------------------------------------------------------------------------------ timing
def _alternate(contenders: dict[str, Callable[[], int]], rounds: int) -> dict[str, Any]:
    """Warm up each contender, then time ``rounds`` rounds in rotating order; each call returns its token count."""
    tokens = {name: run() for name, run in contenders.items()}
    times: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            tokens[name] = contenders[name]()
            times[name].append(time.perf_counter() - started)
        print(f"    round {r + 1}/{rounds}: " + ", ".join(f"{n} {t[-1]:.1f} s" for n, t in times.items()), flush=True)
    return {
        name: {"tokens": tokens[name], "seconds": times[name], "tokens_per_s": tokens[name] / statistics.median(t)}
        for name, t in times.items()
    } | {"load_average": _load()}


def _ratio(result: dict[str, Any], name: str, reference: str) -> float:
    per_round = [ref / own for own, ref in zip(result[name]["seconds"], result[reference]["seconds"], strict=True)]
    return statistics.median(per_round)  # time ratio reference/own = throughput ratio own/reference (same tokens)


def _adalink_engine(spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from adalink.serve import AdapterStack

    torch.set_num_threads(args.threads)
    stack = AdapterStack.from_runs([spec["adalink_run"]], device="cpu")
    requests = [(f"task{i % TASKS}", ids, spec["new_tokens"]) for i, ids in enumerate(spec["prompts"])]
    budget = len(requests) * spec["new_tokens"]

    def adalink() -> int:
        stack.complete(requests)
        return budget

    def base() -> int:
        with stack.model.disable_adapter():
            stack.complete(requests)
        return budget

    print(f"adalink serve engine: {len(requests)} requests x {spec['new_tokens']} tokens, {args.threads} thread(s)")
    result = _alternate({"base": base, "adalink": adalink}, spec["rounds"])
    early = sum(len(c.token_ids) < spec["new_tokens"] for c in stack.complete(requests))
    result["rows_ending_early"] = early  # such rows still cost every step in HF generate
    return result


def _run_vllm(spec: dict[str, Any], work: Path, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    out = work / f"vllm-{engine}.json"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)}
    command = [args.vllm_python or sys.executable, __file__, "--vllm-part", str(work / "spec.json")]
    print(f"vLLM engine {engine!r}: {' '.join(command)} --engine {engine} (log {work / f'vllm-{engine}.log'})")
    with open(work / f"vllm-{engine}.log", "w") as log:
        subprocess.run([*command, "--engine", engine], env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    return json.loads(out.read_text())


# ------------------------------------------------------------------------------------------------ vLLM part
def _vllm_part(spec_file: Path, engine: str) -> int:
    """Runs under the vLLM Python: one engine, its contenders timed side by side, results to vllm-<engine>.json."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    spec = json.loads(spec_file.read_text())
    adapters = (
        {"adalink": spec["adalink"]} if engine == "adalink" else {"adalink": spec["adalink"], "lora": spec["lora"]}
    )
    targets = ["embed_tokens"] if engine == "adalink" else ["embed_tokens", "q_proj", "v_proj"]
    settings = {
        "dtype": "float32",
        "enable_lora": True,
        "max_lora_rank": RANK,
        "max_loras": sum(len(a) for a in adapters.values()) + 1,  # the spare slot (see vllm_engine)
        "lora_target_modules": targets,
        "enable_prefix_caching": False,
        "max_model_len": 256,
        "seed": 0,
    }
    started = time.perf_counter()
    llm = LLM(model=spec["base"], **settings)
    print(f"engine {engine!r} ready in {time.perf_counter() - started:.0f} s with {settings}", flush=True)
    params = SamplingParams(temperature=0, max_tokens=spec["new_tokens"], ignore_eos=True)
    prompts = [{"prompt_token_ids": ids} for ids in spec["prompts"]]
    ids = iter(range(1, 100))
    requests = {kind: [LoRARequest(n, next(ids), p) for n, p in named.items()] for kind, named in adapters.items()}

    def contender(kind: str | None) -> Callable[[], int]:
        def run() -> int:
            loras = [requests[kind][i % len(requests[kind])] for i in range(len(prompts))] if kind else None
            outputs = llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
            return sum(len(o.outputs[0].token_ids) for o in outputs)

        return run

    contenders = {"base": contender(None), **{kind: contender(kind) for kind in adapters}}
    result = _alternate(contenders, spec["rounds"]) | {"settings": settings}
    (spec_file.parent / f"vllm-{engine}.json").write_text(json.dumps(result))
    return 0


# ------------------------------------------------------------------------------------------------ output
def _print_engine(title: str, result: dict[str, Any], *, reference: str) -> None:
    print(f"{title}  (load average {result['load_average']})")
    for name, row in result.items():
        if isinstance(row, dict) and "tokens_per_s" in row:
            ratio = _ratio(result, name, reference)
            print(
                f"  {name:<8} {row['tokens_per_s']:8.1f} tokens/s  {ratio:5.2f}x {reference}  ({row['tokens']} tokens)"
            )


def _print_summary(results: dict[str, Any]) -> None:
    shared, own, ours = results["vllm_shared"], results["vllm_adalink"], results["adalink_serve"]
    rows = [
        ("vLLM shared engine: AdaLink mixed / base", _ratio(shared, "adalink", "base"), ">= 0.95"),
        ("vLLM shared engine: AdaLink mixed / LoRA mixed", _ratio(shared, "adalink", "lora"), "> 1"),
        ("vLLM shared engine: LoRA mixed / base", _ratio(shared, "lora", "base"), ""),
        ("vLLM AdaLink-only engine: AdaLink mixed / base", _ratio(own, "adalink", "base"), ">= 0.95"),
        ("adalink serve: AdaLink mixed / base", _ratio(ours, "adalink", "base"), ""),
    ]
    print("summary (ratios of tokens/s; medians of per-round ratios)")
    for label, value, target in rows:
        print(f"  {label:<50} {value:5.2f}x  {('target ' + target) if target else ''}")
    vllm_tps, ours_tps = own["adalink"]["tokens_per_s"], ours["adalink"]["tokens_per_s"]
    print(f"  {'AdaLink mixed: vLLM (AdaLink-only engine) / adalink serve':<50} {vllm_tps / ours_tps:5.2f}x")


if __name__ == "__main__":
    sys.exit(main())
