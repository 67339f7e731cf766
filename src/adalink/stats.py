"""Aggregation over seeds: mean ± std per condition, and the difference of two conditions with its standard error.

The verdict rules built on them are in :mod:`.verdicts`:

- ``difference(a, b)``: mean(a) - mean(b) and its standard error sqrt(s_a²/n_a + s_b²/n_b); a difference larger
  than ``2 ×`` its standard error (about a 95 % interval for normal noise) counts as real.
- With one seed there is no spread, so no difference can be called real and every such verdict is "inconclusive".
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["INCONCLUSIVE", "NOT_REPRODUCED", "REPRODUCED", "Difference", "Summary", "difference", "summarize"]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
Z = 2.0  # a difference counts as real when |mean difference| > Z × its standard error


@dataclass(frozen=True)
class Summary:
    """Mean ± sample standard deviation of one condition's scores over seeds."""

    mean: float  # mean score over seeds
    std: float  # sample standard deviation (ddof=1); 0.0 for one seed
    n: int  # number of seeds

    @property
    def sem(self) -> float:
        """Standard error of the mean (infinite for one seed: no spread is known)."""
        return self.std / math.sqrt(self.n) if self.n > 1 else math.inf

    def points(self, scale: float = 100.0) -> str:
        """``"84.3 ± 0.5"`` in points (accuracy × 100) with ``(n=3)``."""
        return f"{self.mean * scale:.1f} ± {self.std * scale:.1f} (n={self.n})"


def summarize(scores: Sequence[float]) -> Summary:
    """Mean ± std of ``scores`` (one per seed).

    Raises:
        ValueError: If ``scores`` is empty.
    """
    if not scores:
        raise ValueError("summarize() needs at least one score.")
    std = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return Summary(statistics.fmean(scores), std, len(scores))


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its standard error."""

    delta: float  # mean(a) - mean(b), in score units (accuracy)
    se: float  # sqrt(s_a²/n_a + s_b²/n_b); infinite when either side has one seed

    @property
    def real(self) -> bool:
        """Whether |delta| exceeds ``Z`` standard errors."""
        return abs(self.delta) > Z * self.se

    def points(self) -> str:
        se = "n/a" if math.isinf(self.se) else f"{100 * self.se:.1f}"
        return f"{100 * self.delta:+.1f} points (s.e. {se})"


def difference(a: Summary, b: Summary) -> Difference:
    """The difference of two conditions' means and its standard error (Welch)."""
    if a.n < 2 or b.n < 2:
        return Difference(a.mean - b.mean, math.inf)
    return Difference(a.mean - b.mean, math.sqrt(a.std**2 / a.n + b.std**2 / b.n))
