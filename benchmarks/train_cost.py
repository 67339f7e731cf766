"""Training cost of every registered method relative to full tuning, and of our LoRA, (IA)3 and prompt tuning
relative to Hugging Face peft's implementations, on the same model (MiniLM + classification head) and microbatch.

Speed: tokens/s of whole training steps (forward, loss, backward, gradient clipping, AdamW step, zero_grad),
every contender alive in this one process and timed in alternating rounds. Memory: each contender trains a few
steps in its own fresh process; its peak resident memory (``ru_maxrss``) minus its resident memory just before
the model was loaded is the training memory (weights, gradients, optimiser state, activations; ``VmHWM``, reset
after loading so the loader's transient copies do not count); on a GPU,
``torch.cuda.max_memory_allocated``. Targets: AdaLink >= 1.4x full tuning's tokens/s at <= 0.7x its memory; our
LoRA, (IA)3 and prompt tuning >= 0.95x peft's speed. Methods not registered yet are skipped with a message.

    python benchmarks/train_cost.py [--batch 16 --length 64 --rounds 5 --iters 2] [--memory-steps 3]
        [--no-memory] [--json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from _common import (
    alternate,
    base_parser,
    emit,
    make_step,
    minilm_path,
    profile_tables,
    ratio,
    setup_threads,
    text_batch,
)

from adalink.process_memory import peak_rss_bytes, release_free_memory, reset_peak_rss, rss_bytes

PEFT_PAIRS = {"lora": "peft_lora", "ia3": "peft_ia3", "prompt_tuning": "peft_prompt_tuning"}
_BERT_FFN_OUT = r".*\.layer\.\d+\.output\.dense$"  # BERT's FFN output (not attention.output.dense)


def _base():
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)


def build(name: str):
    """(model, task_aware) for one contender: a registered method, full, or peft's counterpart."""
    from adalink import get_peft_model
    from adalink.methods.base import METHOD_CONFIGS
    from adalink.training.methods import resolve_method_config

    base = _base()
    heads = ["classifier"]
    if name.startswith("peft_"):
        import peft

        configs = {
            "peft_lora": lambda: peft.LoraConfig(
                r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"], modules_to_save=heads
            ),
            "peft_ia3": lambda: peft.IA3Config(
                target_modules=rf".*\.(key|value)$|{_BERT_FFN_OUT}",
                feedforward_modules=_BERT_FFN_OUT,
                modules_to_save=heads,
            ),
            "peft_prompt_tuning": lambda: peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),
        }
        return peft.get_peft_model(base, configs[name]()), False
    if name in ("lora", "ia3", "prompt_tuning"):  # the same hyper-parameters as peft's contender above
        extra = {"lora": {"rank": 8, "alpha": 16.0, "dropout": 0.0}, "ia3": {}, "prompt_tuning": {}}[name]
        if name == "prompt_tuning":
            extra["num_virtual_tokens"] = 20
        return get_peft_model(base, METHOD_CONFIGS[name](modules_to_save=heads, **extra)), False
    config = resolve_method_config(name, rank=None, dropout=None, tasks=["tweets"], heads=heads)  # as the bench
    return get_peft_model(base, config), False


def child_memory(name: str, batch_size: int, length: int, steps: int) -> None:
    """Runs in a fresh process: train ``steps`` steps of one contender, print its memory as JSON."""
    import peft  # noqa: F401  (imported before the baseline, like every other library)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batch = text_batch(tokenizer, batch_size, length)
    labels = torch.arange(batch_size) % 2
    with torch.device("meta"):
        AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(minilm_path()))
    before = rss_bytes()
    model, _ = build(name)
    step, _ = make_step(model, batch, labels)
    release_free_memory()  # give the loader's garbage back, then watch the training steps only
    reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    for _ in range(steps):
        step()
    peak = peak_rss_bytes()
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    print(json.dumps({"memory_bytes": gpu or peak - before, "peak_rss_bytes": peak, "rss_before_bytes": before}))


def _memory(name: str, args) -> int | None:
    command = [sys.executable, __file__, "--child-memory", name]
    command += ["--batch", str(args.batch), "--length", str(args.length), "--threads", str(args.threads)]
    command += ["--memory-steps", str(args.memory_steps)]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"train_cost: memory of {name} failed: {done.stderr[-500:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])["memory_bytes"]


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="examples per step (the standard bench's: 16)")
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--methods", default="all", help="comma-separated methods (default: every registered)")
    parser.add_argument("--memory-steps", type=int, default=3, help="training steps of each memory subprocess")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-contender memory subprocesses")
    parser.add_argument("--child-memory", default=None, help=argparse_hidden())
    parser.set_defaults(rounds=5, iters=2)
    args = parser.parse_args()
    setup_threads(args.threads)
    if args.child_memory:
        child_memory(args.child_memory, args.batch, args.length, steps=args.memory_steps)
        return
    from transformers import AutoTokenizer

    from adalink.training.methods import method_names

    registered = method_names()
    wanted = registered if args.methods == "all" else [m.strip() for m in args.methods.split(",")]
    notes = []
    for missing in ("adalink", "full", "lora", "ia3", "prompt_tuning"):
        if missing not in registered:
            notes.append(f"{missing}: not registered yet, skipped.")
            print(f"train_cost: method {missing!r} is not registered yet; skipped.", file=sys.stderr)
    names = [m for m in wanted if m in registered]
    names += [PEFT_PAIRS[m] for m in PEFT_PAIRS if m in names]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batch = text_batch(tokenizer, args.batch, args.length)
    labels = torch.arange(args.batch) % 2
    steps, trainable = {}, {}
    for name in names:
        try:
            model, _ = build(name)
            steps[name], trainable[name] = make_step(model, batch, labels)
        except Exception as err:  # a method that cannot train this model: reported, not fatal
            notes.append(f"{name}: could not be built ({type(err).__name__}: {err}).")
            print(f"train_cost: {name} skipped: {type(err).__name__}: {err}", file=sys.stderr)
    times = alternate(steps, args.rounds, args.iters)
    if args.profile:
        profile_tables(steps, args.profile)
    memory = {} if args.no_memory else {name: _memory(name, args) for name in steps}
    tokens = int(batch["attention_mask"].sum())
    reference = "full" if "full" in times else None
    rows = []
    for name, t in times.items():
        row = {
            "contender": name,
            "trainable": trainable[name],
            "tok_s": tokens / sorted(t)[len(t) // 2],
            "speed_vs_full": ratio(times, name, reference) if reference else None,
        }
        if memory:
            mine, full = memory.get(name), memory.get("full")
            row["memory_mb"] = mine / 2**20 if mine else None
            row["memory_vs_full"] = mine / full if mine and full else None
        pair = next((ours for ours, theirs in PEFT_PAIRS.items() if theirs == name), None)
        if name in PEFT_PAIRS and PEFT_PAIRS[name] in times:
            row["speed_vs_peft"] = ratio(times, name, PEFT_PAIRS[name])
        elif pair:
            row["speed_vs_peft"] = None
        rows.append(row)
    targets = []
    if "adalink" in times and reference:
        speed = ratio(times, "adalink", "full")
        mem = (memory.get("adalink") or 0) / memory["full"] if memory.get("full") else None
        targets.append({"target": "adalink speed >= 1.4x full", "value": speed, "met": speed >= 1.4})
        if mem is not None:
            targets.append({"target": "adalink memory <= 0.7x full", "value": mem, "met": mem <= 0.7})
    for ours, theirs in PEFT_PAIRS.items():
        if ours in times and theirs in times:
            value = ratio(times, ours, theirs)
            targets.append({"target": f"{ours} speed >= 0.95x peft", "value": value, "met": value >= 0.95})
    emit(
        {
            "script": "train_cost",
            "batch": args.batch,
            "length": args.length,
            "memory_steps": None if args.no_memory else args.memory_steps,
            "rounds": args.rounds,
            "iters": args.iters,
            "targets": targets,
            "rows": rows,
            "notes": notes,
        },
        args,
    )


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
