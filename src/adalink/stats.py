"""Aggregation over seeds, and the test that decides whether two conditions' scores really differ.

A condition is a few seeds (usually 3) scored on one fixed test set. Its mean score moves for two reasons:

- **the seed** (head init, data order, dropout): measured by the sample variance over seeds, ``s²/n``;
- **the test set**: every seed is scored on the same ``N`` test examples, so the mean over seeds carries the test
  set's sampling error once, whatever the number of seeds. For one model it is binomial, ``p(1 - p)/N``; for the
  mean over seeds it is at most the mean of each run's ``p(1 - p)/N`` (``Summary.test_var``), which we add to the
  condition's variance of its mean. bbc has 218 test examples: one example is 0.46 points and the binomial standard
  error of a 95 % score is 1.5 points, as large as the spread over seeds.

Why this and not a paired bootstrap: the run files keep each run's accuracy, not its per-example predictions, so the
examples cannot be resampled, and the correlation between two methods' errors on the same examples (which makes the
paired test-set error smaller) is unknown. Taking the two sides' test-set variances as independent is the bound that
holds whatever that correlation is (as long as the methods do not err on complementary examples): a difference called
real here is real; one called "not shown" might be shown with paired predictions.

``difference(a, b)``: ``mean(a) - mean(b)``, its standard error ``sqrt(s_a²/n_a + s_b²/n_b + v_a + v_b)`` and
Welch's t-test at the Welch–Satterthwaite degrees of freedom, ``se⁴ / ((s_a²/n_a)²/(n_a-1) + (s_b²/n_b)²/(n_b-1))``
(the test-set terms are binomial variances computed from the score, not estimated from the seeds: they count as known,
with no degrees of freedom of their own). A difference is *real* when Welch's two-sided p-value is below 5 %, i.e.
when the 95 % interval ``delta ± t(0.975, df) × se`` excludes 0. With 3 seeds a side and no test-set term ``df`` is
2 to 4 and ``t(0.975, df)`` is 2.8 to 4.3, not the 2 of a normal interval. One seed on a side has no spread: nothing
is real and every verdict built on it is inconclusive. The verdict rules built on this are in :mod:`.verdicts`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

__all__ = [
    "CONFIDENCE",
    "INCONCLUSIVE",
    "NOT_REPRODUCED",
    "REPRODUCED",
    "Difference",
    "Summary",
    "difference",
    "p_text",
    "sampling_variance",
    "summarize",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
CONFIDENCE = 0.95  # two-sided: a difference is real when Welch's p-value is below 1 - CONFIDENCE


@dataclass(frozen=True)
class Summary:
    """Mean ± sample standard deviation of one condition's scores over seeds, with its test-set sampling variance."""

    mean: float  # mean score over seeds
    std: float  # sample standard deviation (ddof=1); 0.0 for one seed
    n: int  # number of seeds
    test_var: float = 0.0  # test-set sampling variance of the mean: mean over runs of p(1-p)/N (0 = not counted)

    @property
    def sem(self) -> float:
        """Standard error of the mean over seeds (infinite for one seed: no spread is known)."""
        return self.std / math.sqrt(self.n) if self.n > 1 else math.inf

    def points(self, scale: float = 100.0) -> str:
        """``"84.3 ± 0.5"`` in points (accuracy × 100) with ``(n=3)``."""
        return f"{self.mean * scale:.1f} ± {self.std * scale:.1f} (n={self.n})"


def summarize(scores: Sequence[float], test_var: float = 0.0) -> Summary:
    """Mean ± std of ``scores`` (one per seed); ``test_var`` is their test-set sampling variance
    (:func:`sampling_variance`).

    Raises:
        ValueError: If ``scores`` is empty.
    """
    if not scores:
        raise ValueError("summarize() needs at least one score.")  # an internal invariant
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return Summary(statistics.fmean(scores), std, len(scores), test_var)


def sampling_variance(runs: Sequence[Mapping[str, float]], examples: Mapping[str, int]) -> float:
    """The binomial sampling variance of a mean score, averaged over runs.

    Args:
        runs: Per run, each task's accuracy (the run's score is the mean over its tasks).
        examples: Per task, the number of test examples scored (:func:`adalink.data.scored_examples`).

    Raises:
        ValueError: If an accuracy is not a whole number of correct answers out of its task's examples (the test
            split or ``max_eval`` is not the one the run scored).
    """
    variances = []
    for scores in runs:
        for task, p in scores.items():
            correct = p * examples[task]
            if abs(correct - round(correct)) > 1e-6 * max(1, examples[task]):
                raise UsageError(f"{task} accuracy {p!r} is not a whole number of {examples[task]} test examples.")
        variances.append(sum(p * (1 - p) / examples[t] for t, p in scores.items()) / len(scores) ** 2)
    return statistics.fmean(variances) if variances else 0.0


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its standard error and Welch's degrees of freedom."""

    delta: float  # mean(a) - mean(b), in score units (accuracy)
    se: float  # sqrt(s_a²/n_a + s_b²/n_b + test-set variances); infinite when either side has one seed
    df: float  # Welch–Satterthwaite degrees of freedom (inf when the seeds add no variance; nan with one seed)

    @property
    def known(self) -> bool:
        """Whether both sides have a spread (two seeds or more)."""
        return math.isfinite(self.se)

    @property
    def t(self) -> float:
        """Welch's t statistic, delta / se."""
        if not self.known:
            return math.nan
        return self.delta / self.se if self.se > 0 else math.copysign(math.inf, self.delta) if self.delta else 0.0

    @property
    def p(self) -> float:
        """Welch's two-sided p-value (nan with one seed on a side)."""
        if not self.known:
            return math.nan
        return float(2 * _t_distribution().sf(abs(self.t), self.df))

    @property
    def half_width(self) -> float:
        """Half the width of the 95 % interval: ``t(0.975, df) × se``."""
        if not self.known:
            return math.inf
        return float(_t_distribution().ppf(0.5 + CONFIDENCE / 2, self.df)) * self.se

    @property
    def low(self) -> float:
        return self.delta - self.half_width

    @property
    def high(self) -> float:
        return self.delta + self.half_width

    @property
    def real(self) -> bool:
        """Whether the 95 % interval excludes 0 (Welch's p < 0.05)."""
        return self.known and (self.low > 0 or self.high < 0)

    def test_text(self) -> str:
        """``"Welch t = 2.15, df = 3.0, p = 0.12"``."""
        if not self.known:
            return "one seed on a side: no spread, no test"
        df = "∞" if math.isinf(self.df) else f"{self.df:.1f}"
        return f"Welch t = {self.t:.2f}, df = {df}, p {p_text(self.p)}"

    def points(self) -> str:
        """``"+9.4 ± 8.6 points (95 % CI +0.8 to +18.0; Welch t = 3.41, df = 2.9, p = 0.045)"``."""
        if not self.known:
            return f"{100 * self.delta:+.1f} points (one seed on a side: no spread, no test)"
        return (
            f"{100 * self.delta:+.1f} ± {100 * self.half_width:.1f} points (95 % CI {100 * self.low:+.1f} to "
            f"{100 * self.high:+.1f}; {self.test_text()})"
        )


def _t_distribution() -> Any:
    """scipy's Student t distribution (scipy comes with the ``bench`` extra, which the reports need)."""
    try:
        from scipy import stats
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError("Welch's t-test needs scipy: pip install 'adalink[bench]'") from error
    return stats.t


def p_text(p: float) -> str:
    """A p-value as the reports print it, with its sign: ``"= 0.074"`` (3 decimals below 0.1, 2 above) or
    ``"< 0.001"``."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}" if p < 0.1 else f"= {p:.2f}"


def difference(a: Summary, b: Summary) -> Difference:
    """The difference of two conditions' means, its standard error (seeds and test set) and Welch's df."""
    if a.n < 2 or b.n < 2:
        return Difference(a.mean - b.mean, math.inf, math.nan)
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    variance = va + vb + a.test_var + b.test_var
    estimated = va**2 / (a.n - 1) + vb**2 / (b.n - 1)
    df = variance**2 / estimated if estimated > 0 else math.inf
    return Difference(a.mean - b.mean, math.sqrt(variance), df)
