"""The decision rules that turn two conditions' per-seed scores into a verdict on one of the paper's claims.

Every rule reads the 95 % interval of a difference of means, ``delta ± t(0.975, df) × se`` (Welch's t-test with the
test-set sampling error, :func:`~.stats.difference`), and the same symmetric rule: a claim is a threshold on that
difference; it is *reproduced* when the whole interval lies on the claim's side of its threshold, *not reproduced*
when the whole interval lies on the other side, and *inconclusive* otherwise (one seed on a side has no spread:
always inconclusive).

- ``better``: "a beats b", threshold 0;
- ``within``: "ours trails the reference by at most k points", threshold -k on ours - reference;
- ``flat``: "every rank within 1 point of the best", threshold 1 on each gap to the best.

The reason of each verdict says first what the numbers show (which side is ahead, by how much, the interval and the
test), then the rule that decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..stats import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Difference, Summary, difference

__all__ = ["POINT", "Verdict", "better", "flat", "missing", "shown", "within"]

POINT = 0.01  # one accuracy point


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper and what our runs say about it."""

    claim: str  # the paper's claim, with its table
    verdict: str  # reproduced / not reproduced / inconclusive
    reason: str  # the numbers and the rule that decided


def shown(d: Difference, a: str, b: str) -> str:
    """What ``d = a - b`` shows, in words: ``"AdaLink ahead of FT by 9.4 ± 8.6 points (Welch t = 3.41, df = 2.9,
    p = 0.045)"`` (± the 95 % interval's half-width), after ``"no difference shown: "`` when the interval holds 0."""
    if not d.known:
        return f"{a} − {b}: {d.points()}"
    lead, behind = (a, b) if d.delta >= 0 else (b, a)
    magnitude = Difference(abs(d.delta), d.se, d.df)
    words = f"{lead} ahead of {behind} by {100 * magnitude.delta:.1f} ± {100 * d.half_width:.1f} points"
    words += f" ({magnitude.test_text()})"
    return words if d.real else f"no difference shown: {words}"


def _judge(d: Difference, threshold: float, claim: str, names: tuple[str, str]) -> Verdict:
    """The symmetric rule on ``d`` = names[0] − names[1]: the claim holds where it is above ``threshold``."""
    numbers = shown(d, *names)
    if not d.known:
        return Verdict(claim, INCONCLUSIVE, f"{numbers}; one seed on a side: no spread to judge by")
    limit = "0" if threshold == 0 else f"{100 * threshold:+g} point{'' if abs(threshold) == POINT else 's'}"
    interval = f"the 95 % interval of {names[0]} − {names[1]} ({100 * d.low:+.1f} to {100 * d.high:+.1f})"
    if d.low > threshold:
        return Verdict(claim, REPRODUCED, f"{numbers}; {interval} lies above {limit}, as the claim needs")
    if d.high < threshold:
        return Verdict(claim, NOT_REPRODUCED, f"{numbers}; {interval} lies below {limit}, where the claim needs above")
    return Verdict(claim, INCONCLUSIVE, f"{numbers}; {interval} holds {limit}, the claim's limit")


def better(a: Summary, b: Summary, claim: str, names: tuple[str, str]) -> Verdict:
    """Claim "a beats b": reproduced when the 95 % interval of mean(a) - mean(b) lies above 0, not reproduced when it
    lies below 0, else inconclusive. ``names``: what a and b are called, ``("AdaLink", "PT")``."""
    return _judge(difference(a, b), 0.0, claim, names)


def within(ref: Summary, ours: Summary, points: float, claim: str, names: tuple[str, str]) -> Verdict:
    """Claim "ours trails ref by at most ``points``": reproduced when the 95 % interval of mean(ours) - mean(ref)
    lies above -``points``, not reproduced when it lies below, else inconclusive. ``names``: what ref and ours are
    called, ``("FT", "AdaLink")``."""
    ref_name, our_name = names
    return _judge(difference(ours, ref), -points * POINT, claim, (our_name, ref_name))


def flat(summaries: Mapping[str, Summary], labels: list[str], claim: str) -> Verdict:
    """Claim "insensitive to rank": every rank's 95 % interval of its gap to the best rank lies below 1 point
    (reproduced); some rank's lies above 1 point (not reproduced); else inconclusive."""
    present = [label for label in labels if label in summaries and summaries[label].n > 1]
    if len(present) < 2:
        return Verdict(claim, INCONCLUSIVE, "fewer than two ranks have 2 or more finished seeds")
    best = max(present, key=lambda label: summaries[label].mean)
    gaps = {label: difference(summaries[best], summaries[label]) for label in present if label != best}
    worst = max(gaps, key=lambda label: gaps[label].delta)
    spread = f"best {best}; {shown(gaps[worst], best, worst)}"
    if all(g.high < POINT for g in gaps.values()):
        return Verdict(claim, REPRODUCED, f"{spread}; every rank's 95 % interval of its gap lies below 1 point")
    if any(g.low > POINT for g in gaps.values()):
        behind = ", ".join(label for label, g in gaps.items() if g.low > POINT)
        return Verdict(claim, NOT_REPRODUCED, f"{spread}; {behind}: the 95 % interval of the gap lies above 1 point")
    holding = ", ".join(
        f"{label} ({100 * g.low:+.1f} to {100 * g.high:+.1f})" for label, g in gaps.items() if g.low <= POINT <= g.high
    )
    return Verdict(claim, INCONCLUSIVE, f"{spread}; the 95 % interval of the gap holds 1 point: {holding}")


def missing(summaries: Mapping[str, Summary], labels: list[str], claim: str) -> Verdict | None:
    """An inconclusive verdict naming the conditions that have no finished run, or None when all have."""
    absent = [label for label in labels if label not in summaries]
    return Verdict(claim, INCONCLUSIVE, f"not run: {', '.join(absent)}") if absent else None
