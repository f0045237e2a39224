"""The drift statistics agree with scipy and with hand-worked values."""

import numpy as np
import pytest
from scipy import stats

from dethrone.drift import statistics as st


def _ks(a, b):
    unique, counts = np.unique(a, return_counts=True)
    cum = np.cumsum(counts)
    d = st.ks_statistic(cum, st.count_against(unique, b))
    return d, st.ks_pvalue(d, len(a), len(b))


@pytest.mark.parametrize("n1,n2", [(1000, 700), (5000, 3001), (20000, 12345), (3000, 9000)])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.5])
def test_ks_matches_scipy(rng, n1, n2, ties, shift):
    a = rng.standard_t(3, size=n1)
    b = rng.standard_t(3, size=n2) + shift
    if ties:  # heavy ties, as in diamonds' table and depth columns
        a, b = np.round(a, 1), np.round(b, 1)
    d, p = _ks(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert abs(d - ref.statistic) <= 1e-12
    assert abs(p - ref.pvalue) <= 1e-3


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.03])
def test_ks_large_samples_limit_distribution(rng, shift):
    # en >= LIMIT_DISTRIBUTION_FROM switches to the corrected limiting distribution
    a, b = rng.normal(size=150_000), rng.normal(shift, size=120_000)
    d, p = _ks(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert abs(d - ref.statistic) <= 1e-12
    assert abs(p - ref.pvalue) <= 1e-3


def test_ks_current_outside_reference_range(rng):
    a = rng.uniform(0, 1, 500)
    b = rng.uniform(2, 3, 400)
    d, p = _ks(a, b)
    assert d == pytest.approx(1.0, abs=1e-12)
    assert abs(p - stats.ks_2samp(a, b, method="asymp").pvalue) <= 1e-3


def test_ks_small_samples_use_exact_pvalue(rng):
    a, b = rng.normal(size=20), rng.normal(0.8, size=15)
    unique, counts = np.unique(a, return_counts=True)
    d = st.ks_statistic(np.cumsum(counts), st.count_against(unique, b))
    p = st.ks_pvalue(d, 20, 15, ref_values=a, cur_values=b)
    exact = stats.ks_2samp(a, b, method="exact")
    assert d == pytest.approx(exact.statistic, abs=1e-12)
    assert p == pytest.approx(exact.pvalue, rel=1e-9)


def test_psi_hand_worked():
    # (0.4-0.5)ln(0.4/0.5) + (0.4-0.3)ln(0.4/0.3) + 0 = 0.0223144 + 0.0287682
    assert st.psi([0.5, 0.3, 0.2], [0.4, 0.4, 0.2]) == pytest.approx(0.0510826, abs=1e-6)


def test_psi_floor_keeps_empty_bucket_finite():
    # an empty reference bucket is floored at 1e-4: (0.1-1e-4)ln(0.1/1e-4)
    value = st.psi([1.0, 0.0], [0.9, 0.1])
    expected = (0.9 - 1.0) * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    assert np.isfinite(value) and value == pytest.approx(expected, rel=1e-12)


def test_psi_identical_is_zero():
    assert st.psi([0.2, 0.8], [0.2, 0.8]) == 0.0


@pytest.mark.parametrize("ref,cur", [
    ([100, 200, 300], [120, 180, 310]),
    ([5, 0, 40, 7], [9, 3, 30, 0]),
    ([1000, 1], [900, 50]),
])
def test_chi2_matches_scipy(ref, cur):
    stat, p, dof = st.chi2_homogeneity(np.array(ref), np.array(cur))
    table = np.array([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert dof == expected.dof


def test_chi2_single_bucket_is_no_difference():
    assert st.chi2_homogeneity(np.array([10]), np.array([5])) == (0.0, 1.0, 0)


def test_holm_and_bh_match_textbook():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005,0.01,0.03,0.04 -> 0.02,0.03,0.06,0.06
    assert st.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted -> 0.02, 0.02, 0.04, 0.04
    assert st.adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert st.adjust_pvalues([0.2, None, 0.01], "holm") == pytest.approx([0.2, None, 0.02])
    assert st.adjust_pvalues(p, "none") == p


def test_two_proportion_matches_chi2():
    p = st.two_proportion_pvalue(30, 1000, 60, 1000)
    expected = stats.chi2_contingency([[30, 970], [60, 940]], correction=False).pvalue
    assert p == pytest.approx(expected, rel=1e-9)
