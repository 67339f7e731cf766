"""The diagnosis table of docs/adalink-on-decoders.md, generated from the run files.

    python benchmarks/adalink_decoders/table.py   # prints the markdown table
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "adalink-decoders" / "diagnosis"


def _setting(r: dict) -> str:
    a = r["args"]
    opts = json.loads(a["method_config"]) if a.get("method_config") else {}
    parts = [a["method"], f"r{a['rank']}", f"lr {a['lr']:g}" if a.get("lr") else "lr default"]
    if a["method"] == "adalink":
        parts.append(f"dropout {opts.get('dropout', a['dropout']):g}")
        if "init" in opts:
            parts.append(f"init {opts['init']}")
    if a.get("format") not in (None, "auto"):
        parts.append(a["format"])
    return ", ".join(parts)


def rows() -> list[dict]:
    out = []
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        if "metrics" not in r:
            continue
        m, steps = r["metrics"], r["steps"]
        last = steps[-1] if steps else {}
        out.append(
            {
                "name": r["name"],
                "task": ",".join(m["tasks"]),
                "setting": _setting(r),
                "params": m["trainable_params"],
                "steps": m["steps"],
                "initial_loss": m["initial_loss"],
                "final_loss": m["final_loss"],
                "score": m["score"],
                "metric": m["metric"],
                "rel_delta_e": last.get("rel_delta_e"),
                "train_seconds": m["train_seconds"],
                "wall_seconds": r["wall_seconds"],
            }
        )
    return out


def markdown() -> str:
    head = (
        "| run | task | setting | trainable params | steps | loss, first 10 → last 10 steps | score (first 100 test) "
        "| ‖ΔE‖/‖E‖ at the end | train s | wall s |\n|---|---|---|---:|---:|---|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows():
        rel = f"{r['rel_delta_e']:.3f}" if r["rel_delta_e"] is not None else "–"
        lines.append(
            f"| {r['name']} | {r['task']} | {r['setting']} | {r['params']:,} | {r['steps']} | "
            f"{r['initial_loss']:.3f} → {r['final_loss']:.3f} | {r['score']:.4f} ({r['metric']}) | {rel} | "
            f"{r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    return head + "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
