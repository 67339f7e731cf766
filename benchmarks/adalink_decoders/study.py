"""The study tables of docs/adalink-on-decoders.md (issue 26 step 3), generated from the study's run files.

    python benchmarks/adalink_decoders/study.py      # prints the tables (table.py --write puts them in the document)

A run file is ``benchmarks/results/adalink-decoders/study/NAME.json`` (written by diagnose.py or zeroshot.py through
queue.sh); ``NAME`` is ``<task letter>-<row>-s<seed>`` (``h`` headlines, ``t`` tweets), the zero-shot row
``<task letter>-zeroshot``. Rows are the runs that share everything but the seed.

Training speed is not the runs' own tokens/s: they ran two or three at a time on a shared machine whose load changed
from run to run, so those figures do not compare rows. The speed column comes from ``speed.py``, which times every
row's training step side by side in one process (``benchmarks/results/adalink-decoders/study-speed.json``).

Tests, stated beside every verdict:
- against zero-shot: the zero-shot score is deterministic (greedy decoding, no seed), so a row's seeds are tested
  against it with a one-sample t-test, df = n - 1 (Welch's test with one side exact);
- against LoRA: Welch's t-test at the Welch–Satterthwaite df (``adalink.stats.difference``).
Both hold the first-N test examples every run scores fixed; per_example.py adds the test set's own sampling error
(a paired bootstrap over seeds and examples, from each run's per-example predictions).
"""

from __future__ import annotations

import json
import math
import re
import statistics
from pathlib import Path

from scipy import stats as scipy_stats

from adalink.stats import difference, summarize

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "benchmarks" / "results" / "adalink-decoders" / "study"
TASKS = {"h": "headlines", "t": "tweets", "b": "bbc"}
SPEED = ROOT / "benchmarks" / "results" / "adalink-decoders" / "study-speed.json"
_SEED = re.compile(r"-s(\d+)$")
_LR = re.compile(r"-lr[0-9.e+-]+$")


def load(results: Path = STUDY) -> dict[str, dict[str, list[dict]]]:
    """task -> row name -> its run records (one per seed), in seed order."""
    table: dict[str, dict[str, list[dict]]] = {}
    for path in sorted(results.glob("*.json")):
        record = json.loads(path.read_text())
        letter, _, rest = record["name"].partition("-")
        row = _SEED.sub("", rest)
        table.setdefault(TASKS[letter], {}).setdefault(row, []).append(record)
    return table


def _setting(record: dict) -> str:
    args = record.get("args")
    if args is None:
        return "base model, adapter off (`adalink eval --base-only`)"
    config = record["metrics"].get("method_config", {})
    parts = [args["method"]]
    if "rank" in config:
        parts.append(f"r{config['rank']}")
    parts.append(f"lr {args['lr']:g}")
    if args["method"] == "adalink":
        parts += [f"{key} {config[key]}" for key in ("init", "dropout") if key in config]
        if config.get("boundaries", ["input"]) != ["input"]:
            parts.append("boundaries " + " + ".join(config["boundaries"]))
    return ", ".join(parts)


def _scores(records: list[dict]) -> list[float]:
    return [r["metrics"]["score"] for r in records]


def _versus_constant(scores: list[float], constant: float) -> str:
    if len(scores) < 2:
        return f"{scores[0] - constant:+.4f} (one seed: no test)"
    n, mean, sd = len(scores), statistics.fmean(scores), statistics.stdev(scores)
    se = sd / math.sqrt(n)
    t = (mean - constant) / se if se > 0 else math.copysign(math.inf, mean - constant)
    p = float(2 * scipy_stats.t.sf(abs(t), n - 1))
    verdict = "**real**" if p < 0.05 else "not shown"
    return f"{mean - constant:+.4f} ± {se:.4f} (t = {t:.2f}, df = {n - 1}, p = {p:.3g}): {verdict}"


def _versus_row(scores: list[float], other: list[float]) -> str:
    if len(scores) < 2 or len(other) < 2:
        return f"{statistics.fmean(scores) - statistics.fmean(other):+.4f} (one seed on a side: no test)"
    d = difference(summarize(scores), summarize(other))
    verdict = "**real**" if d.real else "not shown"
    return f"{d.delta:+.4f} ± {d.se:.4f} ({d.test_text()}): {verdict}"


def side_by_side_speed(path: Path = SPEED) -> dict[str, dict]:
    """Row name -> its speed.py record (tokens/s and ratios measured side by side); empty before speed.py ran."""
    if not path.exists():
        return {}
    return {row["row"]: row for row in json.loads(path.read_text())["rows"]}


def _speed(record: dict | None) -> str:
    if record is None:
        return "–"
    versus_lora = f" ({record['speed_vs_lora']:.2f}x LoRA)" if record.get("speed_vs_lora") is not None else ""
    return f"{record['tok_s']:.0f}{versus_lora}"


def task_table(task: str, rows: dict[str, list[dict]], speed: dict[str, dict] | None = None) -> str:
    speed = side_by_side_speed() if speed is None else speed
    zero = rows.get("zeroshot")
    zero_score = zero[0]["metrics"]["score"] if zero else None
    lora = _scores(rows["lora"]) if "lora" in rows else None
    out = [
        "| row | setting | trainable params | adapter bytes | seeds | validation | test score, mean ± sd "
        "| vs zero-shot "
        "| vs LoRA r8 (q, v) | train tokens/s, side by side |",
        "|---|---|---:|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, records in sorted(rows.items(), key=lambda item: (item[0] != "zeroshot", item[0])):
        scores, metrics = _scores(records), records[0]["metrics"]
        validation = [r["metrics"]["best_validation_score"] for r in records if "best_validation_score" in r["metrics"]]
        cells = [
            name,
            _setting(records[0]),
            f"{metrics['trainable_params']:,}" if "trainable_params" in metrics else "–",
            f"{records[0]['adapter_bytes']:,}" if records[0].get("adapter_bytes") else "–",
            str(len(records)),
            f"{statistics.fmean(validation):.4f}" if validation else "–",
            f"{statistics.fmean(scores):.4f}" + (f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""),
            "–" if zero_score is None or name == "zeroshot" else _versus_constant(scores, zero_score),
            "–" if lora is None or name in ("lora", "zeroshot") else _versus_row(scores, lora),
            _speed(speed.get(name, speed.get(_LR.sub("", name)))),  # a rate variant trains at its row's speed
        ]
        out.append("| " + " | ".join(cells) + " |")
    metric = next(iter(rows.values()))[0]["metrics"].get("metric", "score")
    return f"{task} ({metric}):\n\n" + "\n".join(out) + "\n"


def sweeps_table(table: dict[str, dict[str, list[dict]]]) -> str:
    """Each row's rates on validation (seed 0 of every rate, so one seed against one seed), the best one, and whether
    it lies inside the swept range: the issue's protocol sweeps until it does."""
    out = [
        "| task | row | validation at each rate (seed 0) | best | best inside the range? |",
        "|---|---|---|---:|---|",
    ]
    for task, rows in table.items():
        families: dict[str, dict[float, float]] = {}
        for name, records in rows.items():
            first = _seed0(records)
            if first is None or "best_validation_score" not in first["metrics"]:
                continue
            families.setdefault(_LR.sub("", name), {})[first["args"]["lr"]] = first["metrics"]["best_validation_score"]
        for family, by_rate in sorted(families.items()):
            rates = sorted(by_rate)
            top = max(by_rate.values())
            best = [rate for rate in rates if by_rate[rate] == top]
            cells = [
                f"**{rate:g}: {by_rate[rate]:.4f}**" if rate in best else f"{rate:g}: {by_rate[rate]:.4f}"
                for rate in rates
            ]
            if len(rates) == 1:
                where = "one rate: not swept"
            elif len(best) > 1:
                where = "no: a tie"
            elif best[0] == rates[-1]:
                where = "no: the highest swept"
            elif best[0] == rates[0]:
                where = "no: the lowest swept"
            else:
                where = "yes"
            best_rates = " = ".join(f"{rate:g}" for rate in best)
            out.append(f"| {task} | {family} | {' · '.join(cells)} | {best_rates} | {where} |")
    return "\n".join(out) + "\n"


def rate_rows_table(table: dict[str, dict[str, list[dict]]]) -> str:
    """Every rate variant with two seeds or more against its row at the default rate, on test (Welch) and validation."""
    out = [
        "| task | row | rate | seeds | validation | test score, mean ± sd | against the default rate's row |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for task, rows in table.items():
        for name, records in sorted(rows.items()):
            family = _LR.sub("", name)
            if family == name or family not in rows or len(records) < 2:
                continue
            scores = _scores(records)
            validation = statistics.fmean(r["metrics"]["best_validation_score"] for r in records)
            out.append(
                f"| {task} | {family} | {records[0]['args']['lr']:g} | {len(records)} | {validation:.4f} | "
                f"{statistics.fmean(scores):.4f} ± {statistics.stdev(scores):.4f} | "
                f"{_versus_row(scores, _scores(rows[family]))} |"
            )
    return "\n".join(out) + "\n"


def _lr(records: list[dict]) -> float:
    args = records[0].get("args")
    return args["lr"] if args else 0.0


def _seed0(records: list[dict]) -> dict | None:
    return next((r for r in records if r.get("seed") == 0 and r.get("steps")), None)


def loss_table(table: dict[str, dict[str, list[dict]]]) -> str:
    """The rates of each row by training loss over the second half of the run (seed 0), paired step by step against
    the row's default rate. Every step's batch holds examples the run has not trained on yet (100 steps of 16 stay
    inside the first epoch of every task here) and every rate sees the same batches (the seed fixes the order), so
    the loss is a held-out measure on 800 examples, far less noisy than a score on 100-200. Neighbouring steps'
    differences are correlated (the weights change little between them), so the standard error comes from the means
    of 5 blocks of 10 steps (batch means), not from the 50 steps as if independent."""
    out = [
        "| task | row | rate | mean loss, steps 51-100 "
        "| minus the default rate's, paired per step (± se over 5 blocks of 10) |",
        "|---|---|---:|---:|---|",
    ]
    for task, rows in table.items():
        swept = {_LR.sub("", name) for name in rows if _LR.search(name)}  # rows with a rate variant
        by_family_and_rate = sorted(rows.items(), key=lambda item: (_LR.sub("", item[0]), _lr(item[1])))
        for name, records in by_family_and_rate:
            family = _LR.sub("", name)
            run, default = _seed0(records), _seed0(rows.get(family, []))
            if family not in swept or run is None or default is None:
                continue
            losses = [step["loss"] for step in run["steps"]][50:]
            cell = "(the default)"
            if run is not default:
                diffs = [a - b["loss"] for a, b in zip(losses, default["steps"][50:], strict=True)]
                blocks = [statistics.fmean(diffs[i : i + 10]) for i in range(0, len(diffs), 10)]
                se = statistics.stdev(blocks) / math.sqrt(len(blocks))
                cell = f"{statistics.fmean(diffs):+.3f} ± {se:.3f}"
            out.append(f"| {task} | {family} | {run['args']['lr']:g} | {statistics.fmean(losses):.3f} | {cell} |")
    return "\n".join(out) + "\n"


def runs_table(table: dict[str, dict[str, list[dict]]]) -> str:
    out = ["| run | commit | seed | score | wall s | command |", "|---|---|---:|---:|---:|---|"]
    for rows in table.values():
        for records in rows.values():
            for r in records:
                seed = r.get("seed", "–")
                out.append(
                    f"| {r['name']} | {r['commit'][:7]} | {seed} | {r['metrics']['score']:.4f} | "
                    f"{r['wall_seconds']:.0f} | `{r['command']}` |"
                )
    total = sum(r["wall_seconds"] for rows in table.values() for records in rows.values() for r in records)
    count = sum(len(records) for rows in table.values() for records in rows.values())
    return "\n".join(out) + f"\n\n{count} runs, {total / 3600:.1f} hours of wall time in all (one thread each).\n"


def markdown(task: str) -> str:
    table = load()
    return task_table(task, table[task]) if task in table else "_Not run yet._\n"


def runs() -> str:
    return runs_table(load())


def sweeps() -> str:
    return sweeps_table(load())


def losses() -> str:
    return loss_table(load())


def rate_rows() -> str:
    return rate_rows_table(load())


if __name__ == "__main__":
    for name in TASKS.values():
        print(markdown(name))
    print(sweeps())
    print(losses())
    print(rate_rows())
    print(runs())
