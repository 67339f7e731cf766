"""The survey's efficiency figures beside ours: its Table 5, transcribed, and a sentence per column on where our CPU
figures agree with it or differ.

Source: Lialin, Deshpande, Yao and Rumshisky, "Scaling Down to Scale Up: A Guide to Parameter-Efficient
Fine-Tuning" (2023), §11.3, Table 5: T5 in three sizes on one A100 40GB (T5-11B full tuning on two A100 80GB, its
memory the sum of both), batch 32 with a fixed micro-batch per model (Table 3), 512 input tokens; "RAM" is
``torch.cuda.max_memory_allocated()`` during training; throughput is relative to full tuning (= 100), inference
without merging reparametrised methods. The Score column did not survive the text extraction and is not used.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["COLUMNS", "SIZES", "TABLE5", "Column", "SurveyRow", "sentence", "spearman", "survey_value"]


@dataclass(frozen=True)
class SurveyRow:
    """One row of Table 5."""

    params_m: float  # trainable parameters, millions
    params_pct: float  # trainable parameters, % of the model's parameters
    memory_gb: float  # peak GPU memory during training, GB
    train: float  # training tokens/s, full tuning = 100
    infer: float  # inference tokens/s (reparametrised methods not merged), full tuning = 100


_R = SurveyRow
# keys are our method names; the survey's row label is in the comment where it differs
TABLE5: dict[str, dict[str, SurveyRow]] = {
    "T5-Large": {
        "full": _R(737.67, 100, 20.7, 100, 100),
        "houlsby": _R(12.69, 1.720, 12.1, 101.7, 70.1),
        "pfeiffer": _R(6.34, 0.860, 14.0, 108.6, 76.8),
        "parallel": _R(50.41, 6.833, 14.7, 123.1, 73.2),  # Parallel Adapter
        "ia3": _R(0.34, 0.047, 16.2, 124.7, 76.2),
        "prefix_tuning": _R(77.31, 10.481, 15.4, 113.2, 65.0),
        "prompt_tuning": _R(4.42, 0.600, 10.6, 108.8, 64.5),
        "ln_tuning": _R(0.12, 0.017, 14.6, 143.2, 103.1),
        "lora": _R(2.36, 0.320, 14.3, 123.7, 87.4),  # LoRa (q and v)
        "lora_all": _R(8.65, 1.173, 15.9, 80.9, 66.9),
        "krona": _R(0.22, 0.030, 14.6, 109.3, 82.3),
        "compacter": _R(0.30, 0.041, 14.4, 81.3, 59.0),
        "compacter_pp": _R(0.15, 0.021, 13.9, 95.4, 68.1),
        "mam": _R(171.07, 23.191, 16.6, 106.1, 59.1),
        "unipelt": _R(86.22, 11.689, 16.7, 61.1, 45.2),
    },
    "T5-3B": {
        "full": _R(2851.60, 100, 32.9, 100, 100.0),
        "houlsby": _R(12.69, 0.445, 9.3, 93.1, 58.2),
        "pfeiffer": _R(6.34, 0.223, 9.6, 102.9, 64.5),
        "parallel": _R(50.41, 1.768, 10.0, 102.7, 61.2),
        "ia3": _R(1.38, 0.048, 10.8, 103.9, 65.6),
        "prefix_tuning": _R(77.25, 2.709, 12.3, 105.2, 56.8),
        "prompt_tuning": _R(17.69, 0.621, 8.9, 100.0, 58.8),
        "ln_tuning": _R(0.12, 0.004, 9.7, 140.7, 101.8),
        "lora": _R(3.93, 0.138, 9.6, 103.0, 79.8),
        "lora_all": _R(25.17, 0.883, 10.6, 70.2, 56.7),
        "krona": _R(0.41, 0.014, 10.8, 81.2, 74.0),
        "compacter": _R(0.30, 0.011, 9.7, 71.5, 46.0),
        "compacter_pp": _R(0.15, 0.005, 9.5, 86.9, 54.3),
        "mam": _R(171.07, 5.999, 14.2, 84.5, 52.1),
        "unipelt": _R(316.70, 11.106, 12.8, 51.0, 38.2),
    },
    "T5-11B": {
        "full": _R(11307.32, 100, 104.9, 100.0, 100),
        "houlsby": _R(12.69, 0.112, 28.8, 214.9, 70.3),
        "pfeiffer": _R(6.34, 0.056, 28.6, 239.5, 76.3),
        "parallel": _R(50.41, 0.446, 29.0, 233.3, 73.9),
        "ia3": _R(3.48, 0.031, 31.0, 232.2, 75.5),
        "prefix_tuning": _R(1211.99, 10.719, 37.9, 182.3, 62.3),
        "prompt_tuning": _R(70.78, 0.626, 30.2, 209.5, 64.0),  # its cells are shifted one column in the text
        "ln_tuning": _R(0.12, 0.001, 28.4, 275.9, 97.8),
        "lora": _R(20.05, 0.177, 28.9, 216.9, 81.3),
        "lora_all": _R(91.23, 0.807, 30.8, 161.7, 62.4),
        "krona": _R(0.77, 0.007, 33.2, 174.0, 71.8),
        "compacter": _R(0.30, 0.003, 28.6, 162.7, 56.8),
        "compacter_pp": _R(0.15, 0.001, 28.5, 208.8, 64.2),
        "mam": _R(1262.39, 11.164, 43.3, 152.8, 57.3),
        "unipelt": _R(1224.78, 10.832, 38.9, 100.2, 46.8),
    },
}
SIZES = tuple(TABLE5)  # T5-Large (0.74 B parameters) is the size nearest ours


@dataclass(frozen=True)
class Column:
    """One efficiency column compared with the survey's."""

    key: str  # our MethodRow key; "params_pct" is computed against full tuning's parameters
    title: str
    relative: bool  # full tuning = 100 (then "the same side of 100" is compared)
    side: str  # what being on the reported side of 100 means, for the sentence
    below: bool = True  # the reported side: below 100 (True) or above


COLUMNS = (
    Column("params_pct", "Trainable parameters (% of the base model)", False, ""),
    Column("memory_bytes", "Training memory (full tuning = 100)", True, "train in less memory than full tuning"),
    Column("train_tps", "Training tokens/s (full tuning = 100)", True, "train faster than full tuning", below=False),
    Column("infer_tps", "Inference tokens/s, unmerged (full tuning = 100)", True, "infer slower than full tuning"),
)


def survey_value(size: str, method: str, key: str) -> float | None:
    """The survey's figure for one column (memory made relative to full tuning); None where it has no row."""
    row, full = TABLE5[size].get(method), TABLE5[size]["full"]
    if row is None:
        return None
    return {
        "params_pct": row.params_pct,
        "memory_bytes": 100 * row.memory_gb / full.memory_gb,
        "train_tps": row.train,
        "infer_tps": row.infer,
    }[key]


def spearman(xs: list[float], ys: list[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None for fewer than 3 pairs or a constant side."""

    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=values.__getitem__)
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    return statistics.correlation(ranks(xs), ranks(ys))


_NAMED = 4  # methods named where our figure falls on the other side of 100


def sentence(column: Column, ours: Mapping[str, float]) -> str:
    """Where our figures (method -> value, survey methods only, full tuning left out) agree with the survey's."""
    methods = sorted(m for m in ours if m != "full" and m in TABLE5["T5-Large"])
    if not methods:
        return "No method in common with the survey has results yet."

    def survey(size: str, method: str) -> float:
        value = survey_value(size, method, column.key)
        assert value is not None  # methods have a T5-Large row, and every size has the same rows
        return value

    near = {m: survey("T5-Large", m) for m in methods}
    rho = spearman([ours[m] for m in methods], [near[m] for m in methods])
    order = f"rank order against T5-Large: Spearman ρ = {rho:.2f}" if rho is not None else "too few methods to rank"
    if not column.relative:
        ratios = sorted(ours[m] / near[m] for m in methods)
        return (
            f"Our shares are {statistics.median(ratios):.2g}x the survey's T5-Large shares (median over "
            f"{len(methods)} methods; {ratios[0]:.2g}x to {ratios[-1]:.2g}x); {order}."
        )

    def side(value: float) -> bool:
        return value < 100 if column.below else value > 100

    counts = ", ".join(f"{sum(side(survey(s, m)) for m in methods)} on {s}" for s in SIZES)
    differ = sorted((m for m in methods if side(ours[m]) != side(near[m])), key=lambda m: -abs(ours[m] - near[m]))
    gap = statistics.median(ours[m] - near[m] for m in methods)
    text = (
        f"{sum(side(ours[m]) for m in methods)} of {len(methods)} methods {column.side} here (the survey's "
        f"Table 5: {counts}). On the same side of 100 as T5-Large: {len(methods) - len(differ)} of {len(methods)}"
    )
    if differ:
        named = ", ".join(f"{m} ({ours[m]:.0f} here, {near[m]:.0f} there)" for m in differ[:_NAMED])
        more = f" and {len(differ) - _NAMED} more" if len(differ) > _NAMED else ""
        text += f"; the other side, largest gaps first: {named}{more}"
    return f"{text}. Median difference ours − T5-Large: {gap:+.0f} points; {order}."
