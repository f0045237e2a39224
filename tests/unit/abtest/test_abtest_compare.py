"""Welch and paired comparisons against scipy, and their bootstrap intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from dethrone.abtest import compare_paired, compare_unpaired

ALTERNATIVES = ["greater", "less", "two-sided"]


@pytest.fixture
def skewed(rng):
    """Unequal sizes and variances, lognormal like absolute errors."""
    return rng.lognormal(0.0, 1.0, 700), rng.lognormal(-0.1, 1.3, 450)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_equals_scipy_ttest_ind(skewed, alternative):
    a, b = skewed
    ref = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
    res = compare_unpaired(a, b, alternative=alternative, n_boot=0)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.df == pytest.approx(ref.df, rel=1e-12)
    assert res.diff == pytest.approx(a.mean() - b.mean(), rel=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_welch_margin_equals_scipy_on_shifted_champion(skewed, alternative):
    # H0: mean_a - mean_b = margin is the plain test on (a - margin, b).
    a, b = skewed
    ref = stats.ttest_ind(a - 0.2, b, equal_var=False, alternative=alternative)
    res = compare_unpaired(a, b, margin=0.2, alternative=alternative, n_boot=0)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)


@pytest.mark.parametrize("alternative", ALTERNATIVES)
def test_paired_equals_scipy_ttest_rel(rng, alternative):
    base = rng.lognormal(0, 1, 800)
    champion = base * rng.lognormal(0, 0.2, 800)
    challenger = 0.97 * base * rng.lognormal(0, 0.2, 800)
    ref = stats.ttest_rel(champion, challenger, alternative=alternative)
    res = compare_paired(champion, challenger, alternative=alternative, n_boot=0)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.df == ref.df
    assert res.method == "paired-t" and res.n_a == res.n_b == 800


@pytest.mark.parametrize("method", ["bca", "percentile"])
def test_unpaired_interval_agrees_with_scipy_bootstrap(skewed, method):
    a, b = skewed
    ref = stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        confidence_level=0.9,
        method=method.upper() if method == "bca" else method,
        n_resamples=20_000,
        rng=1,
    )
    res = compare_unpaired(a, b, n_boot=20_000, ci_method=method, random_state=2)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    # Different resamples: agreement within Monte-Carlo error (a few % of the width).
    assert res.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.03 * width)
    assert res.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.03 * width)
    assert res.ci_level == pytest.approx(0.9)


def test_paired_bca_interval_agrees_with_scipy_bootstrap(rng):
    champion, challenger = rng.lognormal(0, 1, 600), rng.lognormal(0, 1, 600)
    ref = stats.bootstrap(
        (champion - challenger,),
        np.mean,
        confidence_level=0.9,
        method="BCa",
        n_resamples=20_000,
        rng=3,
    )
    res = compare_paired(champion, challenger, n_boot=20_000, random_state=4)
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert res.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.03 * width)
    assert res.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.03 * width)


def test_bootstrap_is_seeded_and_contains_the_estimate(skewed):
    a, b = skewed
    one = compare_unpaired(a, b, n_boot=500, random_state=7)
    two = compare_unpaired(a, b, n_boot=500, random_state=7)
    other = compare_unpaired(a, b, n_boot=500, random_state=8)
    assert (one.ci_low, one.ci_high) == (two.ci_low, two.ci_high)
    assert (one.ci_low, one.ci_high) != (other.ci_low, other.ci_high)
    assert one.ci_low < one.diff < one.ci_high
    assert one.random_state == 7


def test_two_sided_interval_uses_one_minus_alpha(skewed):
    a, b = skewed
    res = compare_unpaired(a, b, alternative="two-sided", alpha=0.1, n_boot=300, random_state=0)
    assert res.ci_level == pytest.approx(0.9)
    assert compare_unpaired(a, b, confidence_level=0.8, n_boot=0).ci_level == 0.8


def test_result_fields_and_json(skewed):
    a, b = skewed
    res = compare_unpaired(a, b, n_boot=200, random_state=0, margin=0.01)
    assert res.mean_a == pytest.approx(a.mean()) and res.mean_b == pytest.approx(b.mean())
    assert res.relative_improvement == pytest.approx((a.mean() - b.mean()) / a.mean())
    assert (res.n_a, res.n_b, res.alpha, res.margin) == (700, 450, 0.05, 0.01)
    assert res.significant == (res.pvalue < 0.05)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["method"] == "welch" and d["pvalue"] == res.pvalue
    with pytest.raises(AttributeError):
        res.pvalue = 0.0  # frozen


def test_constant_losses_give_a_defined_result():
    # Zero standard error: the difference is known exactly, so the limit applies.
    better = compare_unpaired(np.ones(10), np.zeros(10), n_boot=50, random_state=0)
    assert better.pvalue == 0.0 and better.statistic == np.inf
    same = compare_unpaired(np.ones(10), np.ones(10), n_boot=50, random_state=0)
    assert same.pvalue == pytest.approx(0.5) and same.ci_low == same.ci_high == 0.0
    assert compare_paired(np.ones(5), np.ones(5), n_boot=0).pvalue == pytest.approx(0.5)


@pytest.mark.parametrize(
    "a, b, kwargs, match",
    [
        ([], [1.0, 2.0], {}, "empty"),
        ([1.0, 2.0], [], {}, "empty"),
        ([1.0, np.nan, 2.0], [1.0, 2.0], {}, "NaN or infinite"),
        ([1.0, 2.0], [1.0, np.inf], {}, "NaN or infinite"),
        ([1.0], [1.0, 2.0], {}, "at least 2"),
        ([[1.0, 2.0]], [1.0, 2.0], {}, "1-D"),
        (["x", "y"], [1.0, 2.0], {}, "numeric"),
        ([1.0, 2.0], [1.0, 2.0], {"alpha": 0.0}, "alpha"),
        ([1.0, 2.0], [1.0, 2.0], {"alternative": "bigger"}, "alternative"),
        ([1.0, 2.0], [1.0, 2.0], {"n_boot": -1}, "n_boot"),
        ([1.0, 2.0], [1.0, 2.0], {"ci_method": "basic"}, "ci_method"),
        ([1.0, 2.0], [1.0, 2.0], {"margin": np.nan}, "margin"),
    ],
)
@pytest.mark.parametrize("fn", [compare_unpaired, compare_paired])
def test_bad_input_raises_value_error(fn, a, b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fn(a, b, **kwargs)


def test_paired_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        compare_paired([1.0, 2.0, 3.0], [1.0, 2.0])
