"""The statistical tests behind drift detection, on summarised reference data.

The reference side is always given as its sorted distinct values and their
cumulative counts (what :class:`~dethrone.drift.profile.ReferenceProfile` stores),
so each check only pays for the current data: one ``searchsorted`` of the current
values into the reference's distinct values, never a sort of the reference again.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: proportions are floored at this value so that PSI stays finite (as in Evidently)
PSI_FLOOR = 1e-4
#: up to this n_ref * n_cur the KS p-value is scipy's default ``ks_2samp`` p-value (exact
#: where scipy's default is exact, i.e. both sizes <= 10,000); above it the asymptotic
#: Kolmogorov distribution, exactly as scipy's ``method="asymp"``. scipy's exact method
#: costs O(n1*n2) (20-75 ms per column at 10,000 rows a side), too slow for a default
#: check; at n1*n2 > 1e6 it differs from the asymptotic p-value by at most ~0.012
#: (measured at 1,001 rows a side, smaller at larger sizes)
EXACT_KS_MAX_PRODUCT = 1_000_000
#: from this effective sample size on, the KS p-value uses the limiting Kolmogorov
#: distribution at sqrt(n)*D + 1/(6 sqrt(n)) instead of scipy's finite-n ``kstwo``:
#: it agrees with ``kstwo`` to 3e-6 there and costs microseconds instead of up to a
#: second (scipy's Smirnov sum is O(n))
LIMIT_DISTRIBUTION_FROM = 50_000


@dataclass(frozen=True)
class CurrentCounts:
    """Where the current values fall among the reference's distinct values.

    ``lt[j]`` counts current values below ``unique[j]``, ``le[j]`` those below or
    equal to it; ``n`` is the number of (non-missing) current values.
    """

    lt: np.ndarray
    le: np.ndarray
    n: int


def count_against(unique: np.ndarray, current: np.ndarray) -> CurrentCounts:
    """Count ``current`` values below and at each of the sorted ``unique`` values.

    ``current`` must hold no NaN. Sorting the current values once (numpy's SIMD sort)
    and then searching the k reference values in them is several times faster than
    searching n unsorted current values in the reference.
    """
    cur = np.sort(current)
    lt = np.searchsorted(cur, unique, side="left")
    le = np.searchsorted(cur, unique, side="right")
    return CurrentCounts(lt=lt.astype(np.int64), le=le.astype(np.int64), n=int(cur.shape[0]))


def ks_statistic(ref_cum: np.ndarray, counts: CurrentCounts) -> float:
    """Two-sample KS statistic sup |F_ref - F_cur| from summarised data.

    ``ref_cum`` are the cumulative counts of the reference's sorted distinct values and
    ``counts`` the current values counted against those same values.

    Between two consecutive reference values F_ref is constant and F_cur rises, so
    the supremum is reached at a reference value or just before the next one.
    Equal to ``scipy.stats.ks_2samp(...).statistic`` up to float rounding.
    """
    n1 = int(ref_cum[-1])
    n2 = counts.n
    f_ref = ref_cum / n1
    f_cur_at = counts.le / n2
    # # current values strictly below the next reference value (all of them after the last)
    lt_next = np.empty_like(counts.lt)
    lt_next[:-1] = counts.lt[1:]
    lt_next[-1] = n2
    d = max(
        float(counts.lt[0]) / n2,  # left of the smallest reference value F_ref = 0
        float(np.max(np.abs(f_ref - f_cur_at))),
        float(np.max(np.abs(f_ref - lt_next / n2))),
    )
    return min(d, 1.0)


def ks_pvalue(
    d: float,
    n1: int,
    n2: int,
    *,
    ref_values: np.ndarray | None = None,
    cur_values: np.ndarray | None = None,
) -> float:
    """Two-sided KS p-value.

    If ``n1*n2 <= EXACT_KS_MAX_PRODUCT`` and the raw values are given: scipy's default
    ``ks_2samp(ref_values, cur_values).pvalue`` (exact when both sizes are <= 10,000).
    Otherwise scipy's ``method="asymp"``: the finite-n Kolmogorov distribution ``kstwo``
    with n = round(n1*n2/(n1+n2)), or its limit (see ``LIMIT_DISTRIBUTION_FROM``).
    """
    if n1 * n2 <= EXACT_KS_MAX_PRODUCT and ref_values is not None and cur_values is not None:
        with warnings.catch_warnings():  # scipy falls back to asymp itself, with a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(ref_values, cur_values).pvalue)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = np.round(m * n / (m + n))
    if en >= LIMIT_DISTRIBUTION_FROM:
        root = math.sqrt(en)
        return float(np.clip(stats.kstwobign.sf(root * d + 1 / (6 * root)), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(d, en), 0.0, 1.0))


def psi(
    reference_share: np.ndarray, current_share: np.ndarray, *, floor: float = PSI_FLOOR
) -> float:
    """Population stability index: sum (c - r) * ln(c / r) over buckets.

    Shares are floored at ``floor`` so empty buckets keep PSI finite.
    """
    r = np.maximum(np.asarray(reference_share, dtype=np.float64), floor)
    c = np.maximum(np.asarray(current_share, dtype=np.float64), floor)
    return float(np.sum((c - r) * np.log(c / r)))


def chi2_homogeneity(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, int]:
    """Chi-square test that two count vectors come from one distribution.

    The same as ``scipy.stats.chi2_contingency(table, correction=False)`` on the 2 x K
    table after dropping buckets empty on both sides: no Yates continuity correction,
    not even with two buckets (where scipy's default would apply it), so that the
    statistic is the same Pearson sum whatever the number of buckets. Returns
    ``(statistic, pvalue, dof)``; with fewer than two non-empty buckets the samples
    cannot differ and the result is ``(0.0, 1.0, 0)``.
    """
    table = np.vstack([ref_counts, cur_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0, 0
    row = table.sum(axis=1, keepdims=True)
    col = table.sum(axis=0, keepdims=True)
    expected = row * col / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, float(stats.chi2.sf(statistic, dof)), dof


def pool_sparse(
    ref_counts: np.ndarray, cur_counts: np.ndarray, *, min_expected: float = 5.0
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Merge categories too sparse for a chi-square test into one "other" bucket.

    A category keeps its own bucket when its expected count under homogeneity is at
    least ``min_expected`` on both sides (pooled count * min(n1, n2) / (n1 + n2));
    the others share one bucket, which itself joins the smallest kept bucket if it is
    still too sparse. Which buckets are merged depends only on the pooled counts,
    which are fixed under the permutation null, so the test stays valid conditionally
    on them; categories absent from the reference are treated like any other.

    Returns the pooled reference and current counts, and whether their last bucket is
    the "other" bucket of its own.

    >>> pool_sparse(np.array([50, 40, 3, 0, 4]), np.array([45, 50, 2, 5, 1]))
    (array([50, 40,  7]), array([45, 50,  8]), True)
    """
    ref = np.asarray(ref_counts, dtype=np.int64)
    cur = np.asarray(cur_counts, dtype=np.int64)
    n1, n2 = int(ref.sum()), int(cur.sum())
    if n1 == 0 or n2 == 0:
        return ref, cur, False
    scale = min(n1, n2) / (n1 + n2)
    keep = (ref + cur) * scale >= min_expected
    if keep.all():
        return ref, cur, False
    other_r, other_c = int(ref[~keep].sum()), int(cur[~keep].sum())
    ref, cur = ref[keep], cur[keep]
    if (other_r + other_c) * scale >= min_expected or ref.shape[0] == 0:
        return np.append(ref, other_r), np.append(cur, other_c), True
    smallest = int(np.argmin(ref + cur))
    ref[smallest] += other_r
    cur[smallest] += other_c
    return ref, cur, False


def good_turing_unseen(ref_counts: np.ndarray) -> float:
    """Good-Turing estimate of the probability mass of categories absent from a sample.

    The share of the sample made of categories seen exactly once (singletons / rows).

    >>> good_turing_unseen(np.array([5, 1, 1, 3]))
    0.2
    """
    counts = np.asarray(ref_counts)
    total = counts.sum()
    return float((counts == 1).sum() / total) if total else 0.0


def fisher_pvalue(x1: int, n1: int, x2: int, n2: int, *, alternative: str = "two-sided") -> float:
    """Fisher exact p-value that x1 of n1 and x2 of n2 share one proportion.

    ``alternative="greater"`` tests against a larger second proportion (x2/n2).

    Used for missing rates: it is exact (the pooled z-test is liberal in the far tail
    that a multiple-testing correction looks at: with 4 columns of 20% missing values
    at 200 rows a side, Holm-corrected z-tests flagged 3.8% of 1,000 same-population
    runs, Fisher 2.6%), and scipy computes it in about 2 ms even at 1M rows a side.

    >>> round(fisher_pvalue(3, 10, 8, 10), 4)
    0.0698
    """
    if n1 == 0 or n2 == 0:
        return 1.0
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    scipy_alt = {"two-sided": "two-sided", "greater": "less"}[alternative]
    return float(stats.fisher_exact(table, alternative=scipy_alt).pvalue)


def two_proportion_pvalue(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of a difference between two proportions (pooled z-test)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if var <= 0:
        return 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return float(2 * stats.norm.sf(abs(z)))


def adjust_pvalues(pvalues: list[float | None], method: str) -> list[float | None]:
    """Holm ("holm") or Benjamini-Hochberg ("bh") adjusted p-values; "none" = unchanged.

    ``None`` entries (features without a test) are passed through and not counted.
    """
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = list(pvalues)
    if method == "none" or not idx:
        return out
    p = np.array([pvalues[i] for i in idx], dtype=np.float64)
    m = p.shape[0]
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate((m - np.arange(m)) * ranked)
    elif method == "bh":
        adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * ranked[::-1])[::-1]
    else:
        raise ValueError(f"unknown correction {method!r}; use holm, bh or none")
    adj = np.minimum(adj, 1.0)
    result = np.empty(m)
    result[order] = adj
    for j, i in enumerate(idx):
        out[i] = float(result[j])
    return out
