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
    assert abs(p - ref.pvalue) <= 1e-12  # without raw values: scipy's method="asymp"


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.03])
def test_ks_large_samples_limit_distribution(rng, shift):
    # en >= LIMIT_DISTRIBUTION_FROM switches to the corrected limiting distribution
    a, b = rng.normal(size=150_000), rng.normal(shift, size=120_000)
    d, p = _ks(a, b)
    ref = stats.ks_2samp(a, b, method="asymp")
    assert abs(d - ref.statistic) <= 1e-12
    assert abs(p - ref.pvalue) <= 3e-6  # README: the limit agrees with kstwo to 3e-6


def test_ks_current_outside_reference_range(rng):
    a = rng.uniform(0, 1, 500)
    b = rng.uniform(2, 3, 400)
    d, p = _ks(a, b)
    assert d == pytest.approx(1.0, abs=1e-12)
    assert abs(p - stats.ks_2samp(a, b, method="asymp").pvalue) <= 1e-3


def _ks_with_values(a, b):
    unique, counts = np.unique(a, return_counts=True)
    d = st.ks_statistic(np.cumsum(counts), st.count_against(unique, b))
    ref = np.repeat(unique, counts)  # what detect_drift rebuilds from a profile
    return d, st.ks_pvalue(d, len(a), len(b), ref_values=ref, cur_values=b)


# README: up to n1*n2 = 1e6 the p-value is scipy's default ks_2samp p-value (exact where
# scipy's default is exact, i.e. both sizes <= 10,000; asymptotic otherwise)
@pytest.mark.parametrize(
    "n1,n2",
    [
        (20, 15),
        (80, 80),
        (101, 100),
        (300, 3333),
        (1000, 999),
        (1000, 1000),
        (100, 10_000),
        (10, 100_000),
    ],
)
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.1, 0.4])
def test_ks_pvalue_is_scipy_default_up_to_product(rng, n1, n2, ties, shift):
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    d, p = _ks_with_values(a, b)
    expected = stats.ks_2samp(a, b)
    assert d == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-15)


# README: above n1*n2 = 1e6 it is scipy's method="asymp" (see test_ks_matches_scipy); where
# scipy's default is still exact (both sizes <= 10,000) the two differ by at most 0.015
@pytest.mark.parametrize(
    "n1,n2", [(1001, 1001), (1500, 1000), (3000, 1000), (2000, 1999), (10_000, 9_999)]
)
@pytest.mark.parametrize("shift", [0.0, 0.03, 0.06, 0.1])
def test_ks_pvalue_above_product_close_to_scipy_default(rng, n1, n2, shift):
    a, b = rng.normal(size=n1), rng.normal(shift, size=n2)
    d, p = _ks_with_values(a, b)
    assert p == pytest.approx(stats.ks_2samp(a, b, method="asymp").pvalue, abs=1e-12)
    assert abs(p - stats.ks_2samp(a, b).pvalue) <= 0.015


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


@pytest.mark.parametrize(
    "ref,cur",
    [
        ([100, 200, 300], [120, 180, 310]),
        ([5, 0, 40, 7], [9, 3, 30, 0]),
        ([1000, 1], [900, 50]),
    ],
)
def test_chi2_matches_scipy(ref, cur):
    stat, p, dof = st.chi2_homogeneity(np.array(ref), np.array(cur))
    table = np.array([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table, correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert dof == expected.dof


def test_chi2_two_levels_has_no_yates_correction():
    ref, cur = np.array([40, 60]), np.array([55, 45])
    stat, p, dof = st.chi2_homogeneity(ref, cur)
    plain = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    yates = stats.chi2_contingency(np.array([ref, cur]))  # scipy's default: Yates
    assert dof == 1 and stat == pytest.approx(plain.statistic, rel=1e-12)
    assert p == pytest.approx(plain.pvalue, rel=1e-12)
    assert abs(p - yates.pvalue) > 0.01  # so the test above can tell the two apart


@pytest.mark.parametrize(
    "ref,cur,other",
    [
        ([500, 300, 1, 0, 2, 1], [480, 320, 0, 3, 1, 0], False),  # rare bucket joins a cell
        ([50, 40, 3, 0, 4], [45, 50, 2, 5, 1], True),  # other bucket big enough
        ([100, 200], [90, 210], False),  # nothing sparse
        ([1, 1, 1, 1, 0, 0], [0, 0, 1, 0, 1, 1], True),  # everything sparse: one cell
    ],
)
def test_pool_sparse_keeps_totals_and_expected_counts(ref, cur, other):
    r, c, has_other = st.pool_sparse(np.array(ref), np.array(cur))
    assert has_other is other
    assert r.sum() == sum(ref) and c.sum() == sum(cur) and r.shape == c.shape
    n1, n2 = sum(ref), sum(cur)
    if r.shape[0] > 1:
        assert ((r + c) * min(n1, n2) / (n1 + n2) >= 5).all()
    # merging depends on pooled counts only: swapping the sides swaps the result
    r2, c2, other2 = st.pool_sparse(np.array(cur), np.array(ref))
    assert (r2 == c).all() and (c2 == r).all() and other2 is other


def test_good_turing_unseen_is_singleton_share():
    assert st.good_turing_unseen(np.array([3, 1, 1, 0, 5])) == pytest.approx(0.2)
    assert st.good_turing_unseen(np.array([], dtype=np.int64)) == 0.0


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


def test_fisher_pvalue_matches_r_and_scipy():
    # R: fisher.test(matrix(c(3, 7, 8, 2), 2))$p.value = 0.06978
    assert st.fisher_pvalue(3, 10, 8, 10) == pytest.approx(0.06978, abs=1e-5)
    expected = stats.fisher_exact([[160, 840], [4, 996]]).pvalue
    assert st.fisher_pvalue(160, 1000, 4, 1000) == pytest.approx(expected, rel=1e-12)
    assert st.fisher_pvalue(0, 0, 3, 10) == 1.0
    one_sided = stats.fisher_exact([[3, 7], [8, 2]], alternative="less").pvalue
    assert st.fisher_pvalue(3, 10, 8, 10, alternative="greater") == pytest.approx(one_sided)
