"""Guardrail harm test: fails only on evidence of worsening beyond the margin."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from dethrone.abtest import guardrail_test


def test_harm_test_equals_scipy_welch_with_shifted_null(rng):
    a, b = rng.lognormal(0, 1, 900), rng.lognormal(0.1, 1, 700)
    res = guardrail_test(a, b, name="latency", margin=0.05)
    # H0: mean_b - mean_a <= 0.05 * mean_a, i.e. the plain Welch test on (b, a * 1.05 shift).
    ref = stats.ttest_ind(b - 0.05 * a.mean(), a, equal_var=False, alternative="greater")
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert res.relative_change == pytest.approx(b.mean() / a.mean() - 1)
    json.dumps(res.to_dict(), allow_nan=False)


def test_clear_worsening_fails_and_small_worsening_passes(rng):
    a = rng.gamma(2.0, 1.0, 20_000)
    worse = guardrail_test(a, 1.2 * rng.gamma(2.0, 1.0, 20_000), name="sq", margin=0.05)
    assert worse.failed and "failed" in worse.reason() and "'sq'" in worse.reason()
    # 2% worse, measured very precisely, is still within a 5% margin.
    slight = guardrail_test(a, 1.02 * rng.gamma(2.0, 1.0, 20_000), margin=0.05)
    assert not slight.failed and slight.relative_change > 0
    assert guardrail_test(a, 1.02 * rng.gamma(2.0, 1.0, 20_000), margin=0.0).failed


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"margin": -0.1}, "margin"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_bad_options(rng, kwargs, match):
    with pytest.raises(ValueError, match=match):
        guardrail_test(rng.normal(size=10), rng.normal(size=10), **kwargs)
