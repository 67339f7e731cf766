"""Throughput on vLLM, side by side with adalink's own engine (issue 13, part 5; issue 28, item 5): the base model
vs an 8-task AdaLink mixed batch, on ``adalink serve``'s engine and on vLLM, timed in the same rounds; and, in one
shared vLLM engine, AdaLink mixed vs an 8-adapter LoRA mixed batch vs the base.

Adapters (random, rank 8, on SmolLM2-135M-Instruct): one 8-task AdaLink with random non-zero ``W_down``/``W_up``,
saved as an adalink run and exported by :mod:`adalink.serve.vllm_engine` as 8 embedding LoRAs; 8 peft LoRAs on
``q_proj, v_proj`` (``init_lora_weights=False``: random non-zero A and B). Requests: ``--requests`` test texts of
tweets and bbc in the text-to-text prompt (at most 64 tokens), each continued for exactly ``--new-tokens`` tokens
(vLLM: ``ignore_eos``), greedy. Request i uses AdaLink task i mod 8, or LoRA i mod 8.

Two phases, one vLLM engine each (``--engines``), started in the vLLM Python (``--vllm-python``: this script re-runs
itself there with ``--vllm-part`` and stays up, generating one contender's batch per command it reads):

- ``adalink``: the engine as ``vllm_engine`` deploys AdaLink (LoRA on embed_tokens only, max_loras 9 = 8 + the spare
  slot), and in this process adalink serve's engine (``AdapterStack.complete``, ``--threads`` torch threads; vLLM's
  CPU worker computes on one core and reserves the other) on the same run. Contenders: ``serve_base`` (adalink's
  engine, adapters disabled), ``serve_adalink``, ``vllm_base`` (no LoRA), ``vllm_adalink``: each round sends the same
  batch to each. HF ``generate`` steps every row of the batch until the last one ends.
- ``shared``: ONE engine with the SAME settings for three contenders: LoRA enabled, max_lora_rank 8, max_loras 17
  (16 adapters + the spare slot), LoRA target modules embed_tokens, q_proj, v_proj; ``base``, ``adalink`` (mixed),
  ``lora`` (mixed).

Both engines: float32, no prefix caching (the rounds repeat the prompts). Each contender runs once to warm up (vLLM
loads the adapters then), then ``--rounds`` rounds; the order of the contenders rotates every round. Every round's
time is kept, with the load average after it. A ratio of two contenders is computed per round (same tokens: the time
ratio is the throughput ratio) and reported as mean ± sd over the rounds, with the median; tokens/s use the median
round. Results: ``--out`` (every round, the settings, versions, commit, command and load averages).

    nice -n 10 python benchmarks/vllm_throughput.py --vllm-python ~/vllm-venv/bin/python --work-dir /tmp/vllm-throughput
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "vllm" / "throughput.json"
TASKS = 8
RANK = 8
SUMMARY = (  # (phase, contender, reference, label): per-round ratios reference time / contender time
    ("adalink", "vllm_adalink", "serve_adalink", "AdaLink mixed: vLLM (AdaLink-only engine) / adalink serve"),
    ("adalink", "vllm_base", "serve_base", "base: vLLM (AdaLink-only engine) / adalink serve"),
    ("adalink", "vllm_adalink", "vllm_base", "vLLM AdaLink-only engine: AdaLink mixed / base"),
    ("adalink", "serve_adalink", "serve_base", "adalink serve: AdaLink mixed / base"),
    ("shared", "adalink", "base", "vLLM shared engine: AdaLink mixed / base"),
    ("shared", "lora", "base", "vLLM shared engine: LoRA mixed / base"),
    ("shared", "adalink", "lora", "vLLM shared engine: AdaLink mixed / LoRA mixed"),
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.vllm_part:
        return _vllm_part(Path(args.vllm_part), args.engine, args.reply_fd)
    from adalink.provenance import source_state

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": [sys.executable, *sys.argv],
        "source": source_state(),
        "settings": {k: v for k, v in vars(args).items() if k not in ("vllm_part", "engine", "reply_fd")},
        "versions": _versions(args.vllm_python),
        "load_average_start": _load(),
    }
    print(f"load average at start {results['load_average_start']}", flush=True)
    spec = _prepare(work, args)
    for engine in args.engines.split(","):
        with _VllmEngine(work, engine, args) as vllm:
            contenders = {name: (lambda name=name: vllm(name)) for name in vllm.contenders}
            early: dict[str, int] = {}
            if engine == "adalink":
                serve = _adalink_serve(spec, args, early)
                contenders = serve | {f"vllm_{name}": run for name, run in contenders.items()}
            print(f"phase {engine!r}: {', '.join(contenders)}", flush=True)
            results[engine] = _alternate(contenders, args.rounds) | {"vllm_settings": vllm.settings}
            results[engine]["rows_ending_early"] = early  # adalink serve's rows that met EOS (they still cost steps)
        _write(results, Path(args.out))  # kept if a later phase fails
    results["ratios"] = {
        label: _ratios(results[phase], name, reference) | {"phase": phase, "contender": name, "reference": reference}
        for phase, name, reference, label in SUMMARY
        if phase in results
    }
    results["load_average_end"] = _load()
    _write(results, Path(args.out))
    _print_summary(results)
    print(f"load average at end {results['load_average_end']}; JSON: {args.out}")
    return 0


def _write(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", default=os.environ.get("ADALINK_VLLM_PYTHON"), help="Python with vLLM")
    parser.add_argument("--work-dir", default="vllm-throughput", help="adapters, prompts and logs go here")
    parser.add_argument("--out", default=str(RESULTS), help="the results JSON")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds after the warm-up")
    parser.add_argument("--engines", default="adalink,shared", help="phases, one vLLM engine each: adalink, shared")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of adalink's engine")
    parser.add_argument("--kv-cache-gib", default="2", help="VLLM_CPU_KVCACHE_SPACE when it is not set")
    parser.add_argument("--vllm-part", default=None, help=argparse.SUPPRESS)  # internal: run one vLLM engine
    parser.add_argument("--engine", default="shared", help=argparse.SUPPRESS)
    parser.add_argument("--reply-fd", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def _versions(vllm_python: str) -> dict[str, str]:
    code = "import vllm, torch, transformers; print(vllm.__version__, torch.__version__, transformers.__version__)"
    found = subprocess.run([vllm_python, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"vllm": found[-3], "torch": found[-2], "transformers": found[-1]}


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
    names, loads = list(contenders), []
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            tokens[name] = contenders[name]()
            times[name].append(time.perf_counter() - started)
        loads.append(_load())
        print(f"    round {r + 1}/{rounds}: " + ", ".join(f"{n} {t[-1]:.1f} s" for n, t in times.items()), flush=True)
    return {
        name: {
            "tokens": tokens[name],
            "seconds": t,
            "tokens_per_s_per_round": [tokens[name] / s for s in t],
            "tokens_per_s": tokens[name] / statistics.median(t),
        }
        for name, t in times.items()
    } | {"load_average": _load(), "load_average_per_round": loads}


def _ratios(result: dict[str, Any], name: str, reference: str = "base") -> dict[str, Any]:
    """Per round, ``reference``'s time / ``name``'s (same tokens: ``name``'s throughput / ``reference``'s)."""
    per_round = [ref / own for ref, own in zip(result[reference]["seconds"], result[name]["seconds"], strict=True)]
    return {
        "per_round": per_round,
        "mean": statistics.mean(per_round),
        "sd": statistics.stdev(per_round) if len(per_round) > 1 else 0.0,
        "median": statistics.median(per_round),
    }


def _adalink_serve(spec: dict[str, Any], args: argparse.Namespace, early: dict[str, int]) -> dict[str, Callable]:
    """adalink serve's engine on the AdaLink run, in this process: its base and its AdaLink mixed batch. Each call
    counts the tokens asked for (requests x ``new_tokens``: HF ``generate`` steps every row until the last one ends,
    and adalink has no ``ignore_eos``); ``early`` gets, per contender, the rows of its last call that ended before."""
    import torch

    from adalink.serve import AdapterStack

    torch.set_num_threads(args.threads)
    stack = AdapterStack.from_runs([spec["adalink_run"]], device="cpu")
    requests = [(f"task{i % TASKS}", ids, spec["new_tokens"]) for i, ids in enumerate(spec["prompts"])]

    def run(name: str) -> int:
        early[name] = sum(len(c.token_ids) < spec["new_tokens"] for c in stack.complete(requests))
        return len(requests) * spec["new_tokens"]

    def base() -> int:
        with stack.model.disable_adapter():
            return run("serve_base")

    print(f"adalink serve engine: {len(requests)} requests x {spec['new_tokens']} tokens, {args.threads} thread(s)")
    return {"serve_base": base, "serve_adalink": lambda: run("serve_adalink")}


class _VllmEngine:
    """One offline vLLM engine kept running in the vLLM Python: ``engine(contender)`` generates that contender's batch
    there and returns its token count. Commands go to the process's stdin, answers come back on a pipe of their own
    (vLLM's logs go to ``work/vllm-<engine>.log``)."""

    def __init__(self, work: Path, engine: str, args: argparse.Namespace) -> None:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", args.kv_cache_gib)}
        read, write = os.pipe()
        command = [args.vllm_python or sys.executable, __file__, "--vllm-part", str(work / "spec.json")]
        command += ["--engine", engine, "--reply-fd", str(write)]
        self.log = work / f"vllm-{engine}.log"
        print(f"vLLM engine {engine!r}: {' '.join(command)} (log {self.log})", flush=True)
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(write,),
                text=True,
            )
        os.close(write)
        self.replies = os.fdopen(read)
        ready = self._reply()
        self.settings, self.contenders = ready["settings"], ready["contenders"]
        print(f"  ready in {ready['seconds']:.0f} s: {self.settings}", flush=True)

    def __call__(self, contender: str) -> int:
        assert self.process.stdin is not None
        self.process.stdin.write(contender + "\n")
        self.process.stdin.flush()
        return self._reply()["tokens"]

    def _reply(self) -> dict[str, Any]:
        line = self.replies.readline()
        if not line:
            raise RuntimeError(f"the vLLM engine exited (code {self.process.wait()}); see {self.log}")
        return json.loads(line)

    def __enter__(self) -> _VllmEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the engine ends at the end of its input
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.replies.close()


# ------------------------------------------------------------------------------------------------ vLLM part
def _vllm_part(spec_file: Path, engine: str, reply_fd: int) -> int:
    """Runs under the vLLM Python: one engine; for each contender name read on stdin, that contender's batch
    generated and its token count written to ``reply_fd``."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    replies = os.fdopen(reply_fd, "w")
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
    params = SamplingParams(temperature=0, max_tokens=spec["new_tokens"], ignore_eos=True)
    prompts = [{"prompt_token_ids": ids} for ids in spec["prompts"]]
    ids = iter(range(1, 100))
    requests = {kind: [LoRARequest(n, next(ids), p) for n, p in named.items()] for kind, named in adapters.items()}

    def reply(message: dict[str, Any]) -> None:
        replies.write(json.dumps(message) + "\n")
        replies.flush()

    ready = {"settings": settings, "contenders": ["base", *adapters], "seconds": time.perf_counter() - started}
    reply(ready)
    for line in sys.stdin:
        kind = line.strip()
        loras = [requests[kind][i % len(requests[kind])] for i in range(len(prompts))] if kind != "base" else None
        outputs = llm.generate(prompts, params, lora_request=loras, use_tqdm=False)
        reply({"tokens": sum(len(o.outputs[0].token_ids) for o in outputs)})
    return 0


# ------------------------------------------------------------------------------------------------ output
def _print_summary(results: dict[str, Any]) -> None:
    for engine in ("adalink", "shared"):
        if engine not in results:
            continue
        print(f"phase {engine!r} (tokens/s at the median round; load average {results[engine]['load_average']})")
        for name, row in results[engine].items():
            if isinstance(row, dict) and "tokens_per_s" in row:
                rounds = " ".join(f"{s:.1f}" for s in row["seconds"])
                print(f"  {name:<14} {row['tokens_per_s']:7.1f} tokens/s  ({row['tokens']} tokens; rounds {rounds} s)")
    print("ratios of tokens/s: mean ± sd of per-round ratios (median; per round)")
    for label, r in results["ratios"].items():
        rounds = ", ".join(f"{x:.2f}" for x in r["per_round"])
        print(f"  {label:<58} {r['mean']:.2f} ± {r['sd']:.2f}x (median {r['median']:.2f}; {rounds})")


if __name__ == "__main__":
    sys.exit(main())
