"""Sample-ratio-mismatch test against scipy.stats.chisquare."""

from __future__ import annotations

import json

import pytest
from scipy import stats

from dethrone.abtest import srm_test


@pytest.mark.parametrize(
    "n_a, n_b, share",
    [
        (5000, 5000, 0.5),
        (5200, 4800, 0.5),
        (5100, 4900, 0.5),
        (312, 688, 0.3),
        (9000, 1000, 0.9),
        (1, 0, 0.5),
        (12, 7, 0.25),
        (100_000, 101_500, 0.5),
    ],
)
def test_srm_equals_scipy_chisquare(n_a, n_b, share):
    n = n_a + n_b
    ref = stats.chisquare([n_a, n_b], f_exp=[n * share, n * (1 - share)])
    res = srm_test(n_a, n_b, share)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)
    assert res.mismatch == (ref.pvalue < 0.001)
    assert res.observed_share_a == pytest.approx(n_a / n)


def test_52_48_split_of_10000_rows_is_a_mismatch():
    res = srm_test(5200, 4800, 0.5)
    assert res.mismatch and res.pvalue < 0.001
    assert not srm_test(5050, 4950, 0.5).mismatch
    json.dumps(res.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 10, 0.0), "expected_share_a"),
        ((10, 10, 1.0), "expected_share_a"),
        ((10, 10, 1.5), "expected_share_a"),
        ((0, 0, 0.5), "no rows"),
        ((-1, 10, 0.5), "non-negative"),
        ((1.5, 10, 0.5), "integer"),
    ],
)
def test_srm_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        srm_test(*args)
