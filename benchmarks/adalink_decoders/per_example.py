"""Paired comparisons of the study's rows on the same test examples, with the test set's sampling error included.

    python benchmarks/adalink_decoders/per_example.py   # prints the table (table.py --write puts it in the document)

Welch's test in the study's tables (study.py) compares the seeds' mean scores and so treats the first N test examples
as fixed: it says whether another seed would change the order, not whether another test sample would. Here each
run's per-example scores (``adalink eval --predictions``, one JSON line per test example, under
``benchmarks/results/adalink-decoders/study/predictions/<run>.jsonl``) go into a hierarchical paired bootstrap:
each of 10,000 replicates draws every row's seeds with replacement and one set of test examples with replacement,
the same examples for both rows (paired: what the two rows share about an example's difficulty cancels), and
takes the difference of the two rows' means. Reported: the difference on the real data, the replicates' 95 %
percentile interval and a two-sided p (twice the share of replicates on the far side of 0, at least 1 / 10,000).
A difference is "real" when the interval excludes 0. With 3 seeds the seed draw is coarse (10 distinct multisets),
which is why both this and Welch's test are shown. A row with one seed is left out (zero-shot excepted: it has none),
as its seed draw would be no draw at all.

Each prediction file is checked against its run file: the mean of its scores must equal the run's test score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from study import STUDY, TASKS  # the run files and task letters of the study's tables

PREDICTIONS = STUDY / "predictions"
# (row, against) pairs compared on every task where both have predictions
PAIRS = (
    ("adalink", "lora"),
    ("adalink-r400", "lora"),
    ("adalink", "adalink-r400"),
    ("adalink", "zeroshot"),
    ("adalink-lr2e-2", "lora"),  # AdaLink at its best swept rate on headlines, where it has 3 seeds
    ("adalink-lr2e-2", "adalink"),
    ("adalink-out", "adalink"),  # the output link against the input-only link
)
REPLICATES = 10_000


def load_rows(letter: str, predictions: Path = PREDICTIONS, study: Path = STUDY) -> dict[str, np.ndarray]:
    """Row -> per-example scores, shape (seeds, examples), of one task; each file checked against its run file."""
    rows: dict[str, list[tuple[str, list[float]]]] = {}
    for path in sorted(predictions.glob(f"{letter}-*.jsonl")):
        scores = [json.loads(line)["score"] for line in path.read_text().splitlines() if line.strip()]
        run = json.loads((study / f"{path.stem}.json").read_text())
        expected = run["metrics"]["score"]
        if abs(float(np.mean(scores)) - expected) > 1e-6:
            raise ValueError(f"{path.name}: mean score {np.mean(scores):.6f}, but its run file says {expected:.6f}")
        row = path.stem.partition("-")[2].rsplit("-s", 1)[0] if path.stem[-1].isdigit() else "zeroshot"
        rows.setdefault(row, []).append((path.stem, scores))
    lengths = {len(scores) for runs in rows.values() for _, scores in runs}
    if len(lengths) > 1:
        raise ValueError(f"{letter}: prediction files score different numbers of examples: {sorted(lengths)}")
    return {row: np.array([scores for _, scores in sorted(runs)]) for row, runs in rows.items()}


def paired_bootstrap(a: np.ndarray, b: np.ndarray, replicates: int = REPLICATES, seed: int = 0) -> dict[str, float]:
    """Difference of means a - b (arrays of shape (seeds, examples) over the same examples), its hierarchical paired
    bootstrap 95 % interval and two-sided p."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    examples = rng.integers(0, n, size=(replicates, n))
    deltas = np.empty(replicates)
    for r in range(replicates):  # per replicate: the rows' seeds drawn apart, the examples drawn once for both
        seeds_a = rng.integers(0, a.shape[0], size=a.shape[0])
        seeds_b = rng.integers(0, b.shape[0], size=b.shape[0])
        deltas[r] = a[seeds_a][:, examples[r]].mean() - b[seeds_b][:, examples[r]].mean()
    low, high = np.percentile(deltas, [2.5, 97.5])
    far_side = min(np.mean(deltas <= 0), np.mean(deltas >= 0))
    return {
        "delta": float(a.mean() - b.mean()),
        "low": float(low),
        "high": float(high),
        "p": float(max(2 * far_side, 1 / replicates)),
        "seeds": (a.shape[0], b.shape[0]),
        "examples": n,
    }


def markdown(predictions: Path = PREDICTIONS, study: Path = STUDY) -> str:
    out = [
        "| task | row | against | seeds | test examples | difference | 95 % interval (paired bootstrap) | p "
        "| verdict |",
        "|---|---|---|---|---:|---:|---|---:|---|",
    ]
    for letter, task in TASKS.items():
        rows = load_rows(letter, predictions, study) if predictions.is_dir() else {}
        for row, against in PAIRS:
            if row not in rows or against not in rows:
                continue
            if any(len(rows[r]) < 2 and r != "zeroshot" for r in (row, against)):  # zero-shot alone has no seed
                continue
            result = paired_bootstrap(rows[row], rows[against])
            real = result["low"] > 0 or result["high"] < 0
            out.append(
                f"| {task} | {row} | {against} | {result['seeds'][0]} vs {result['seeds'][1]} | {result['examples']} | "
                f"{result['delta']:+.4f} | [{result['low']:+.4f}, {result['high']:+.4f}] | {result['p']:.3g} | "
                f"{'**real**' if real else 'not shown'} |"
            )
    if len(out) == 2:
        return "_No prediction files yet._\n"
    return "\n".join(out) + "\n"


def lengths(letter: str = "h", predictions: Path = PREDICTIONS) -> str:
    """Mean length in words of each run's predictions and of the references (one task): ROUGE-L's F1 rewards a
    prediction of the reference's length, so a row can gain score by learning the length alone."""
    out = ["| run | score | words per prediction | words per reference |", "|---|---:|---:|---:|"]
    for path in sorted(predictions.glob(f"{letter}-*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        predicted = np.mean([len(r["prediction"].split()) for r in records])
        reference = np.mean([len(r["reference"].split()) for r in records])
        score = np.mean([r["score"] for r in records])
        out.append(f"| {path.stem} | {score:.4f} | {predicted:.1f} | {reference:.1f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
