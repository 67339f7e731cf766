"""The verdict rules: one symmetric rule on the 95 % Welch interval, inconclusive with one seed, words that say which
side is ahead."""

import math

from adalink.experiments import summarize
from adalink.experiments.verdicts import better, flat, within


def test_verdict_rules():
    a, b = summarize([0.90, 0.91, 0.92]), summarize([0.80, 0.81, 0.82])
    assert better(a, b, "c", ("a", "b")).verdict == "reproduced"
    assert better(b, a, "c", ("b", "a")).verdict == "not reproduced"
    noisy = summarize([0.70, 0.95, 0.82])
    assert better(noisy, b, "c", ("x", "b")).verdict == "inconclusive"
    assert better(summarize([0.8]), summarize([0.7]), "c", ("x", "y")).verdict == "inconclusive"  # one seed
    assert within(a, b, 2, "c", ("a", "b")).verdict == "not reproduced"
    assert within(b, a, 2, "c", ("b", "a")).verdict == "reproduced"  # ours better than the reference
    assert within(summarize([0.8]), summarize([0.9]), 2, "c", ("a", "b")).verdict == "inconclusive"  # one seed
    flat_ranks = {"r=4": summarize([0.8, 0.801]), "r=16": summarize([0.802, 0.803])}
    assert flat(flat_ranks, ["r=4", "r=16"], "c").verdict == "reproduced"
    steep = {"r=4": summarize([0.7, 0.71]), "r=16": summarize([0.8, 0.81])}
    assert flat(steep, ["r=4", "r=16"], "c").verdict == "not reproduced"
    assert math.isinf(summarize([0.5]).sem)


def test_better_is_symmetric_no_margin_on_either_side():
    """A small gain whose interval excludes a 1-point gain is inconclusive, not refuted (the old rule refused it
    while it reproduced any gain above 0); the refutation needs the whole interval below 0, as the claim needs it
    above."""
    ref = summarize([0.80, 0.80, 0.80])
    small = summarize([0.804, 0.805, 0.806])  # +0.5 ± 0.2: real, and a gain of 1 point is excluded
    assert better(small, ref, "c", ("a", "b")).verdict == "reproduced"
    tie = summarize([0.799, 0.800, 0.802])  # +0.0 ± 0.4: holds 0, excludes +1
    assert better(tie, ref, "c", ("a", "b")).verdict == "inconclusive"
    assert better(ref, tie, "c", ("b", "a")).verdict == "inconclusive"  # the mirror image: the same verdict


def test_two_standard_errors_are_not_enough_with_three_seeds():
    """t = 2.75 at df = 2.9: real at 2 s.e., not under Welch (critical t 3.26): inconclusive, in both directions."""
    a, b = summarize([0.90, 0.91, 0.92]), summarize([0.85, 0.88, 0.89])
    assert better(a, b, "c", ("a", "b")).verdict == "inconclusive"
    assert better(b, a, "c", ("b", "a")).verdict == "inconclusive"


def test_within_is_symmetric_in_its_interval():
    """'Within k points' needs the whole 95 % interval of ours − ref above −k to be reproduced and below −k to be
    refuted: a small mean gap with a wide spread is inconclusive."""
    ref = summarize([0.80, 0.80, 0.80])
    for ours, expected in [
        (summarize([0.795, 0.794, 0.796]), "reproduced"),  # −0.5 ± 0.2: all of it above −2 points
        (summarize([0.70, 0.80, 0.875]), "inconclusive"),  # −0.8 ± 22: the mean alone would say reproduced
        (summarize([0.74, 0.73, 0.75]), "not reproduced"),  # −6 ± 2.5: all of it below −2 points
        (summarize([0.76, 0.81, 0.77]), "inconclusive"),  # −2.0 ± 6.6: −2 points inside the interval
    ]:
        assert within(ref, ours, 2, "c", ("ref", "ours")).verdict == expected, ours
    wide = {"r=4": summarize([0.8, 0.81]), "r=16": summarize([0.805, 0.8])}  # 0.3 points apart, wide
    assert flat(wide, ["r=4", "r=16"], "c").verdict == "inconclusive"


def test_reasons_say_which_side_is_ahead_with_the_test():
    """The reason says "AdaLink ahead of FT by ..." where the claim speaks of "within a point"."""
    ft, ada = summarize([0.60, 0.62, 0.64]), summarize([0.70, 0.72, 0.74])
    verdict = within(ft, ada, 1, "c", ("FT", "AdaLink"))
    assert verdict.verdict == "reproduced"
    assert verdict.reason == (
        "AdaLink ahead of FT by 10.0 ± 4.5 points (Welch t = 6.12, df = 4.0, p = 0.004); the 95 % interval of "
        "AdaLink − FT (+5.5 to +14.5) lies above -1 point, as the claim needs"
    )
    tie = better(summarize([0.90, 0.91, 0.92]), summarize([0.85, 0.88, 0.89]), "c", ("AdaLink", "PT"))
    assert tie.reason.startswith("no difference shown: AdaLink ahead of PT by 3.7 ± 4.3 points")
    assert tie.reason.endswith("the 95 % interval of AdaLink − PT (-0.7 to +8.0) holds 0, the claim's limit")
