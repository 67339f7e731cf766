"""The decision rules that turn two conditions' per-seed scores into a verdict on one of the paper's claims.

Every rule reads the 95 % interval ``mean difference ± 2 standard errors`` (:func:`~.stats.difference`) and is
symmetric: a claim is *reproduced* only when the whole interval agrees with it, *not reproduced* only when the whole
interval contradicts it, and *inconclusive* otherwise (one seed on a side has no spread: always inconclusive).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Summary, difference

__all__ = ["POINT", "Verdict", "better", "flat", "missing", "within"]

POINT = 0.01  # one accuracy point


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper and what our runs say about it."""

    claim: str  # the paper's claim, with its table
    verdict: str  # reproduced / not reproduced / inconclusive
    reason: str  # the numbers and the rule that decided


def better(a: Summary, b: Summary, claim: str, what: str) -> Verdict:
    """Claim "a beats b": reproduced when mean(a) > mean(b) by more than 2 s.e., not reproduced when b wins by
    more than 2 s.e. or a gain of 1 point is excluded, else inconclusive."""
    d = difference(a, b)
    if d.real and d.delta > 0:
        return Verdict(claim, REPRODUCED, f"{what}: {d.points()}, more than 2 s.e.")
    if d.real and d.delta < 0:
        return Verdict(claim, NOT_REPRODUCED, f"{what}: {d.points()}: the opposite, more than 2 s.e.")
    if d.delta + 2 * d.se < POINT:
        return Verdict(claim, NOT_REPRODUCED, f"{what}: {d.points()}; a gain of 1 point or more is excluded (2 s.e.)")
    if math.isinf(d.se):
        return Verdict(claim, INCONCLUSIVE, f"{what}: {d.points()}; one seed: no spread to judge by")
    return Verdict(claim, INCONCLUSIVE, f"{what}: {d.points()}, within 2 s.e. (noise)")


def within(ref: Summary, ours: Summary, points: float, claim: str, what: str) -> Verdict:
    """Claim "ours trails ref by at most ``points``": reproduced when gap + 2 s.e. is at most that, not reproduced
    when gap - 2 s.e. exceeds it, else inconclusive."""
    d = difference(ref, ours)
    limit = points * POINT
    if math.isinf(d.se):
        return Verdict(claim, INCONCLUSIVE, f"{what}: gap {d.points()}; one seed on a side: no spread to judge by")
    if d.delta + 2 * d.se <= limit:
        return Verdict(claim, REPRODUCED, f"{what}: gap {d.points()}; gap + 2 s.e. ≤ {points:g} point(s)")
    if d.delta - 2 * d.se > limit:
        return Verdict(claim, NOT_REPRODUCED, f"{what}: gap {d.points()}; gap − 2 s.e. > {points:g} point(s)")
    return Verdict(claim, INCONCLUSIVE, f"{what}: gap {d.points()}; {points:g} point(s) lies within gap ± 2 s.e.")


def flat(summaries: Mapping[str, Summary], labels: list[str], claim: str) -> Verdict:
    """Claim "insensitive to rank": every rank within 1 point of the best one, 2 s.e. included (reproduced); some
    rank behind the best by more than 1 point, 2 s.e. included (not reproduced); else inconclusive."""
    present = [label for label in labels if label in summaries and summaries[label].n > 1]
    if len(present) < 2:
        return Verdict(claim, INCONCLUSIVE, "fewer than two ranks have 2 or more finished seeds")
    best = max(present, key=lambda label: summaries[label].mean)
    gaps = {label: difference(summaries[best], summaries[label]) for label in present if label != best}
    worst = max(gaps, key=lambda label: gaps[label].delta)
    spread = f"best {best}, worst {worst}: {gaps[worst].points()} behind"
    if all(g.delta + 2 * g.se <= POINT for g in gaps.values()):
        return Verdict(claim, REPRODUCED, f"all ranks within 1 point of the best, 2 s.e. included ({spread})")
    if any(g.delta - 2 * g.se > POINT for g in gaps.values()):
        return Verdict(claim, NOT_REPRODUCED, f"{spread}: more than 1 point behind, 2 s.e. included")
    return Verdict(claim, INCONCLUSIVE, f"{spread}: 1 point lies within the gap ± 2 s.e.")


def missing(summaries: Mapping[str, Summary], labels: list[str], claim: str) -> Verdict | None:
    """An inconclusive verdict naming the conditions that have no finished run, or None when all have."""
    absent = [label for label in labels if label not in summaries]
    return Verdict(claim, INCONCLUSIVE, f"not run: {', '.join(absent)}") if absent else None
