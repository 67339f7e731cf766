"""Training speed of the study's rows on SmolLM2-135M-Instruct, measured side by side (issue 26 step 3).

The study's own runs record tokens/s, but they ran two or three at a time on a shared machine whose load changed
from run to run (the same command took 793 s on one seed and 2,555 s on another), so those figures do not compare
rows. This script times every row's training step in one process, alternating the rows over several rounds (the
order rotates each round), on one fixed batch of real tweets text (16 x 64 tokens, causal-LM loss on every real
token): forward, loss, backward, gradient clipping, AdamW step, zero_grad. Each row is built as ``adalink train``
builds it (``resolve_method_config`` with the method's defaults and the row's options).

    python benchmarks/adalink_decoders/speed.py --threads 1 --json-out \
        benchmarks/results/adalink-decoders/study-speed.json

Reported per row: trainable parameters, median tokens/s over the rounds, and the median per-round ratio to LoRA r8
(q, v) and to full tuning (higher = faster).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: the shared timing helpers
from _common import alternate, base_parser, emit, make_step, ratio, setup_threads, text_batch

# row name (as in the study's tables) -> (method, rank, --method-config options)
ROWS: dict[str, tuple[str, int | None, dict[str, Any]]] = {
    "adalink": ("adalink", None, {}),
    "adalink-r400": ("adalink", 400, {}),
    "adalink-out": ("adalink", None, {"boundaries": ["input", "output"]}),
    "lora": ("lora", None, {}),
    "full": ("full", None, {}),
}


def build_step(path: str, row: str, batch: dict[str, torch.Tensor]):
    """(one training step of ``row``, its trainable parameter count)."""
    from transformers import AutoModelForCausalLM

    from adalink import get_peft_model
    from adalink.training.methods import resolve_method_config

    method, rank, options = ROWS[row]
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    config = resolve_method_config(method, rank=rank, dropout=None, tasks=["tweets"], heads=[], options=options)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    return make_step(get_peft_model(base, config), batch, labels)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="examples per step (the study's: 16)")
    parser.add_argument("--length", type=int, default=64, help="tokens per example (the study's: 64)")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows of {', '.join(ROWS)}")
    parser.set_defaults(rounds=3, iters=1)
    args = parser.parse_args()
    setup_threads(args.threads)
    from transformers import AutoTokenizer

    from adalink.models import resolve_model

    rows = [r.strip() for r in args.rows.split(",")]
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        parser.error(f"--rows: unknown {', '.join(unknown)}; expected some of {', '.join(ROWS)}")
    path = resolve_model("smollm2-135m").path
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    batch = text_batch(tokenizer, args.batch, args.length)
    steps, trainable = {}, {}
    for row in rows:
        steps[row], trainable[row] = build_step(path, row, batch)
    times = alternate(steps, args.rounds, args.iters)
    tokens = int(batch["attention_mask"].sum())
    result_rows = []
    for row, seconds in times.items():
        result_rows.append(
            {
                "row": row,
                "trainable": trainable[row],
                "tok_s": tokens / sorted(seconds)[len(seconds) // 2],
                "seconds_per_round": seconds,
                "speed_vs_lora": ratio(times, row, "lora") if "lora" in times else None,
                "speed_vs_full": ratio(times, row, "full") if "full" in times else None,
            }
        )
    emit(
        {
            "script": "adalink_decoders/speed",
            "model": "smollm2-135m",
            "batch": args.batch,
            "length": args.length,
            "tokens_per_step": tokens,
            "rounds": args.rounds,
            "iters": args.iters,
            "threads": args.threads,
            "rows": result_rows,
        },
        args,
    )


if __name__ == "__main__":
    main()
