"""The diagnosis tables of docs/adalink-on-decoders.md, generated from the run files.

python benchmarks/adalink_decoders/table.py           # prints the tables
python benchmarks/adalink_decoders/table.py --write   # puts them into the document between its markers
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "adalink-decoders" / "diagnosis"


def _setting(r: dict) -> str:
    a = r["args"]
    opts = json.loads(a["method_config"]) if a.get("method_config") else {}
    if a.get("lr") is not None and a["lr"] < 1e-9:
        return "base model (AdaLink at lr 1e-12: the zero-shot baseline on the same batches)"
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
                "max_eval": r["args"].get("max_eval"),
                "batch": f"{r['args']['batch_size']}×{r['args']['max_length']}",
                "rel_delta_e": last.get("rel_delta_e"),
                "train_seconds": m["train_seconds"],
                "wall_seconds": r["wall_seconds"],
            }
        )
    return out


def markdown() -> str:
    head = (
        "| run | task | setting | trainable params | steps × batch×tokens | train loss, mean of first 10 → last 10 "
        "steps | score (first N test) | ‖ΔE‖/‖E‖ at the end | train s | wall s |\n"
        "|---|---|---|---:|---|---|---:|---:|---:|---:|\n"
    )
    lines = []
    for r in rows():
        rel = f"{r['rel_delta_e']:.3f}" if r["rel_delta_e"] is not None else "–"
        lines.append(
            f"| {r['name']} | {r['task']} | {r['setting']} | {r['params']:,} | {r['steps']} × {r['batch']} | "
            f"{r['initial_loss']:.3f} → {r['final_loss']:.3f} | {r['score']:.4f} ({r['metric']}, N={r['max_eval']}) | "
            f"{rel} | "
            f"{r['train_seconds']:.0f} | {r['wall_seconds']:.0f} |"
        )
    return head + "\n".join(lines) + "\n"


def scales_table() -> str:
    data = json.loads((RESULTS / "scales.json").read_text())
    gemma = RESULTS / "scales-gemma3-270m.json"  # scales.py --gemma3-gguf (the model is not packaged: see there)
    if gemma.is_file():
        data.update({k: v for k, v in json.loads(gemma.read_text()).items() if k == "gemma3-270m"})
    names = [name for name in ("minilm", "smollm2-135m", "gemma3-270m") if name in data]
    out = [
        "| model | d | table RMS | real-token embedding RMS (AdaLink's input) | first block's input RMS "
        "| hidden-state RMS after blocks 1, 2, 3, …, last | tied head |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name in names:
        m = data[name]
        per_layer = m["hidden_rms_per_layer"][1:]
        shown = ", ".join(f"{x:g}" for x in per_layer[:3]) + ", …, " + ", ".join(f"{x:g}" for x in per_layer[-3:])
        out.append(
            f"| {name} | {m['d']} | {m['table_rms']:.4f} | {m['real_token_embedding_rms']:.4f} | "
            f"{m['first_block_input_rms']:.4f} | {shown} | {m['tied_head']} |"
        )
    out += [
        "",
        "| model | rank | W_down init | dropout | √d·RMS(W_down) "
        "| ‖ΔE‖/‖E‖ per unit lr, first Adam step: real gradient | random signs | predicted lr·√r·√dσ "
        "| predicted coherent lr·r·√dσ·√(2/π) |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        for row in data[name]["adam_first_step"]:
            lr = row["lr"]
            out.append(
                f"| {name} | {row['rank']} | {row['init']} | {row['dropout']:g} | "
                f"{row['sqrt_d_times_w_down_rms']:.3f} | "
                f"{row['rel_delta_e_real_grad'] / lr:.2f} | {row['rel_delta_e_random_signs'] / lr:.2f} | "
                f"{row['predicted_random_signs'] / lr:.2f} | {row['predicted_coherent'] / lr:.2f} |"
            )
    return "\n".join(out) + "\n"


def write(doc: Path = ROOT / "docs" / "adalink-on-decoders.md") -> None:
    from paired import curve
    from paired import markdown as paired
    from per_example import lengths
    from per_example import markdown as per_example
    from study import losses as study_losses
    from study import markdown as study
    from study import rate_rows as study_rate_rows
    from study import runs as study_runs
    from study import sweeps as study_sweeps

    text = doc.read_text()
    for marker, table in (
        ("runs", markdown()),
        ("paired-s", paired("s")),
        ("curve-l", curve("l")),
        ("scales", scales_table()),
        ("study-headlines", study("headlines")),
        ("study-tweets", study("tweets")),
        ("study-bbc", study("bbc")),
        ("study-paired", per_example()),
        ("study-lengths", lengths("h")),
        ("study-sweeps", study_sweeps()),
        ("study-losses", study_losses()),
        ("study-rate-rows", study_rate_rows()),
        ("study-runs", study_runs()),
    ):
        begin, end = f"<!-- table:{marker} -->", f"<!-- /table:{marker} -->"
        if begin in text:
            head, rest = text.split(begin, 1)
            text = head + begin + "\n" + table + end + rest.split(end, 1)[1]
    doc.write_text(text)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    if "--write" in sys.argv:
        write()
    else:
        print(scales_table() + "\n" + markdown(), end="")
