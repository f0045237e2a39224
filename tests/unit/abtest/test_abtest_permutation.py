"""The studentized permutation test behind the decision: statistic, p-value, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dethrone.abtest import permutation_welch


def _welch_t(x, y, axis=-1):
    return stats.ttest_ind(x, y, equal_var=False, axis=axis).statistic


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_pvalue_agrees_with_scipy_permutation_test(rng, alternative):
    a, b = rng.lognormal(0, 1, 600), 0.93 * rng.lognormal(0, 1, 200)
    ours = permutation_welch(a, b, alternative=alternative, n_resamples=4999, random_state=0)
    ref = stats.permutation_test(
        (a, b), _welch_t, n_resamples=4999, vectorized=True, alternative=alternative, random_state=0
    )
    assert ours.statistic == pytest.approx(ref.statistic, rel=1e-10)
    # Two independent Monte-Carlo estimates of the same p-value: 4 standard errors of
    # their difference (a two-sided p-value is twice a one-sided tail share).
    factor = 2 if alternative == "two-sided" else 1
    q = ref.pvalue / factor
    assert abs(ours.pvalue - ref.pvalue) <= factor * 4 * math.sqrt(2 * q * (1 - q) / 5000)


def test_margin_shifts_the_champion_losses(rng):
    a, b = rng.lognormal(0, 1, 500), rng.lognormal(0, 1, 700)
    res = permutation_welch(a, b, margin=0.2, random_state=1)
    assert res.statistic == pytest.approx(_welch_t(a - 0.2, b), rel=1e-10)
    assert res.margin == 0.2


def test_seeded_runs_are_reproducible_and_resplits_matter(rng):
    a, b = rng.lognormal(0, 1, 900), 0.95 * rng.lognormal(0, 1, 300)
    first, again = (permutation_welch(a, b, random_state=3) for _ in range(2))
    assert first == again and first.random_state == 3
    assert first.n_resamples == 999 and 1 / 1000 <= first.pvalue <= 1.0
    other = permutation_welch(a, b, random_state=4)
    assert other.statistic == first.statistic and other.pvalue != first.pvalue


def test_skewed_small_challenger_arm_is_judged_more_strictly_than_welch(rng):
    # The situation Welch gets wrong: champion arm 9x larger, losses right-skewed.
    a, b = rng.lognormal(0, 1, 1800), 0.9 * rng.lognormal(0, 1, 200)
    welch = stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue
    perm = permutation_welch(a, b, n_resamples=4999, random_state=0).pvalue
    assert perm > welch


def test_identical_constant_arms_give_pvalue_one():
    res = permutation_welch(np.ones(50), np.ones(30), random_state=0)
    assert res.statistic == 0.0 and res.pvalue == 1.0 and not res.significant


def test_to_dict_records_the_test():
    res = permutation_welch(np.arange(1.0, 41.0), np.arange(0.0, 40.0), random_state=0)
    d = res.to_dict()
    assert d["method"] == "studentized-permutation" and d["n_resamples"] == 999
    assert d["pvalue"] == res.pvalue and d["significant"] == res.significant


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 2.5}, "n_resamples"),
        ({"alternative": "bigger"}, "alternative"),
        ({"margin": math.inf}, "margin"),
        ({"loss_b": [1.0]}, "at least 2"),
        ({"loss_a": [1.0, math.nan]}, "NaN"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    args = {"loss_a": np.arange(10.0), "loss_b": np.arange(10.0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        permutation_welch(args.pop("loss_a"), args.pop("loss_b"), **args)
