"""Paired loss comparison of the diagnosis runs: every run of a protocol sees the same batches in the same order
(seed 0), so a run's loss minus the base model's loss on the same batch (the ``*-zeroshot`` run, lr 1e-12) measures
what its training has gained by that step.

    python benchmarks/adalink_decoders/paired.py [s|l]   # prints a markdown table
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "adalink-decoders" / "diagnosis"


def load(prefix: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}-*.json"))}


def markdown(prefix: str) -> str:
    runs = load(prefix)
    base = runs.get(f"{prefix}-zeroshot")
    if base is None:
        return f"(no {prefix}-zeroshot run yet)\n"
    b = [s["loss"] for s in base["steps"]]
    n = len(b)
    third = max(1, n // 3)
    out = [
        f"| run | mean loss gain vs base, steps 1-{third} | steps {third + 1}-{2 * third} | steps {2 * third + 1}-{n} "
        "| ‖ΔE‖/‖E‖ after steps 2 / 5 / last | score |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, r in runs.items():
        if name == f"{prefix}-zeroshot":
            continue
        loss = [s["loss"] for s in r["steps"]]
        if len(loss) != n:
            continue
        gain = [x - y for x, y in zip(loss, b, strict=True)]

        def mean(a: list[float]) -> float:
            return sum(a) / len(a)

        rel = [s.get("rel_delta_e") for s in r["steps"]]
        rel_text = " / ".join(f"{rel[i]:.3f}" for i in (1, 4, n - 1)) if rel[0] is not None else "–"
        out.append(
            f"| {name} | {mean(gain[:third]):+.3f} | {mean(gain[third : 2 * third]):+.3f} "
            f"| {mean(gain[2 * third :]):+.3f} "
            f"| {rel_text} | {r['metrics']['score']:.4f} |"
        )
    out.append(f"| {prefix}-zeroshot (base, lr 1e-12) | 0 | 0 | 0 | – | {base['metrics']['score']:.4f} |")
    return "\n".join(out) + "\n"


def curve(prefix: str = "l", chunk: int = 10) -> str:
    """Mean training loss per block of ``chunk`` steps (same batches in every run), ‖ΔE‖/‖E‖ and the score."""
    runs = {k: v for k, v in load(prefix).items() if v.get("steps")}
    if not runs:
        return f"(no {prefix}-* runs)\n"
    n = min(len(r["steps"]) for r in runs.values())
    blocks = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]
    head = "| run | " + " | ".join(f"loss, steps {a + 1}-{b}" for a, b in blocks)
    head += " | ‖ΔE‖/‖E‖ after steps 10 / 30 / last | score |"
    out = [head, "|---|" + "---:|" * len(blocks) + "---|---:|"]
    for name, r in runs.items():
        loss = [s["loss"] for s in r["steps"]]
        cells = [f"{sum(loss[a:b]) / (b - a):.3f}" for a, b in blocks]
        rel = [s.get("rel_delta_e") for s in r["steps"]]
        rel_text = " / ".join(f"{rel[i]:.3f}" for i in (9, 29, len(rel) - 1)) if rel[0] is not None else "–"
        m = r["metrics"]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {rel_text} | {m['score']:.4f} ({m['metric']}) |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(sys.argv[1] if len(sys.argv) > 1 else "s"), end="")
