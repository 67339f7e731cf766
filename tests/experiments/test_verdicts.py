"""The verdict rules: symmetric in their standard errors, inconclusive with one seed."""

import math

from adalink.experiments import summarize
from adalink.experiments.verdicts import better, flat, within


def test_verdict_rules():
    a, b = summarize([0.90, 0.91, 0.92]), summarize([0.80, 0.81, 0.82])
    assert better(a, b, "c", "a − b").verdict == "reproduced"
    assert better(b, a, "c", "b − a").verdict == "not reproduced"
    noisy = summarize([0.70, 0.95, 0.82])
    assert better(noisy, b, "c", "x").verdict == "inconclusive"
    assert better(summarize([0.8]), summarize([0.7]), "c", "x").verdict == "inconclusive"  # one seed: no spread
    assert within(a, b, 2, "c", "gap").verdict == "not reproduced"
    assert within(b, a, 2, "c", "gap").verdict == "reproduced"  # ours better than the reference
    assert within(summarize([0.8]), summarize([0.9]), 2, "c", "gap").verdict == "inconclusive"  # one seed
    flat_ranks = {"r=4": summarize([0.8, 0.801]), "r=16": summarize([0.802, 0.803])}
    assert flat(flat_ranks, ["r=4", "r=16"], "c").verdict == "reproduced"
    steep = {"r=4": summarize([0.7, 0.71]), "r=16": summarize([0.8, 0.81])}
    assert flat(steep, ["r=4", "r=16"], "c").verdict == "not reproduced"
    assert math.isinf(summarize([0.5]).sem)


def test_within_is_symmetric_in_its_standard_errors():
    """'Within k points' needs the whole gap ± 2 s.e. below k to be reproduced and above k to be refuted: a small
    mean gap with a wide spread is inconclusive (it once counted as reproduced on the mean alone)."""
    ref = summarize([0.80, 0.80, 0.80])
    for ours, expected in [
        (summarize([0.795, 0.794, 0.796]), "reproduced"),  # gap 0.5 ± 0.1: all of it below 2 points
        (summarize([0.70, 0.80, 0.875]), "inconclusive"),  # gap 0.8 ± 10: the mean alone would say reproduced
        (summarize([0.74, 0.73, 0.75]), "not reproduced"),  # gap 6 ± 1.2: all of it above 2 points
        (summarize([0.76, 0.81, 0.77]), "inconclusive"),  # gap 2.7 ± 3: 2 points inside the interval
    ]:
        assert within(ref, ours, 2, "c", "gap").verdict == expected, ours
    wide = {"r=4": summarize([0.8, 0.81]), "r=16": summarize([0.805, 0.8])}  # 0.3 points apart, s.e. 0.6
    assert flat(wide, ["r=4", "r=16"], "c").verdict == "inconclusive"
