"""Studentized permutation test of mean loss: the skewness-robust half of the decision.

Welch's t-test on right-skewed losses is anti-conservative when the challenger's arm is
the smaller one (measured on diamonds-model absolute errors, skewness 5.7: 7.5% false
promotions at 4500/500 and 8.6% at 1800/200 for alpha = 5%). Skewness corrections of the
t statistic (Johnson's, Hall's) and the bootstrap-t only shrink that error (6.2-6.4% at
1800/200). A permutation test of the Welch statistic is exact whenever the two arms'
losses are exchangeable, i.e. for two equally good models, at any split and any skew;
because the statistic is studentized it stays asymptotically valid when the arms have
equal means but different variances (Janssen 1997; Chung & Romano 2013).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from dethrone.abtest.bootstrap import make_rng
from dethrone.abtest.compare import Alternative, SignificanceMixin, as_losses, welch_se_df

__all__ = ["PermutationResult", "permutation_welch"]

# Bound on one chunk of random keys (~16 MB of float32 plus a float64 mask) per call.
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class PermutationResult(SignificanceMixin):
    """Result of :func:`permutation_welch`.

    Attributes
    ----------
    method : str
        ``"studentized-permutation"``.
    statistic : float
        Welch t of ``mean_a - mean_b - margin`` on the observed arms.
    pvalue : float
        ``(1 + #{t* >= t}) / (1 + n_resamples)`` for ``alternative="greater"``: the
        share of random re-splits of the pooled rows whose Welch t is at least the
        observed one (counting the observed split, so it is never 0); "less" mirrors
        it and "two-sided" doubles the smaller of the two, as
        ``scipy.stats.permutation_test``.
    alternative : str
        As in :func:`~dethrone.abtest.compare.compare_unpaired`.
    alpha, margin : float
        Significance level and the tested margin, in loss units.
    n_a, n_b : int
        Rows per arm.
    n_resamples : int
        Random re-splits drawn.
    random_state : int or None
        Seed when one was given as an int.
    """

    method: str
    statistic: float
    pvalue: float
    alternative: str
    alpha: float
    margin: float
    n_a: int
    n_b: int
    n_resamples: int
    random_state: int | None


def _welch_t(s1a, s2a, na, s1b, s2b, nb):
    """Welch t of arm sums (sum, sum of squares, count); vectorised over resamples."""
    ma, mb = s1a / na, s1b / nb
    va = np.maximum(s2a - s1a * ma, 0.0) / (na - 1)
    vb = np.maximum(s2b - s1b * mb, 0.0) / (nb - 1)
    se, _ = welch_se_df(va, na, vb, nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ma - mb) / se


def permutation_welch(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    alpha: float = 0.05,
    margin: float = 0.0,
    alternative: Alternative = "greater",
    n_resamples: int = 999,
    random_state: int | np.random.Generator | None = None,
) -> PermutationResult:
    """Permutation test of the Welch t statistic, champion (A) vs challenger (B).

    Tests ``H0: mean_a - mean_b <= margin`` against ``H1: mean_a - mean_b > margin``
    (``alternative="greater"``) like :func:`~dethrone.abtest.compare.compare_unpaired`,
    but takes the null distribution of Welch's t from random re-splits of the pooled
    rows (champion losses shifted by ``-margin``) into arms of the observed sizes,
    instead of from Student's t.

    Parameters
    ----------
    loss_a, loss_b : array_like, shape (n_a,), (n_b,)
        Per-row losses of the champion on arm A and the challenger on arm B.
    alpha : float, default 0.05
        Significance level (only used by ``significant``).
    margin : float, default 0.0
        Required improvement in loss units.
    alternative : {"greater", "less", "two-sided"}, default "greater"
        Direction of H1, as in ``compare_unpaired``.
    n_resamples : int, default 999
        Random re-splits; the p-value's Monte-Carlo standard error at 0.05 is
        ``sqrt(0.05 * 0.95 / n_resamples)`` (0.007 for 999).
    random_state : int, numpy.random.Generator or None
        Seed of the re-splits; an int makes the p-value reproducible.

    Returns
    -------
    PermutationResult

    Raises
    ------
    ValueError
        If an input is empty, not 1-D, has fewer than 2 rows or a non-finite value,
        or ``n_resamples`` is not a positive integer.

    Notes
    -----
    The test is exact (false-positive rate <= ``alpha`` at every sample size) when the
    losses of the two arms are exchangeable under H0, which is the A/A situation of two
    equally good models; with ``margin != 0`` it needs the challenger's losses to be
    the champion's shifted by ``margin``. For equal means but different shapes it is
    asymptotically valid. Cost is O(``n_resamples * (n_a + n_b)``): each re-split
    draws random keys for the pooled rows and keeps the smallest ``min(n_a, n_b)``.
    """
    a, b = as_losses(loss_a, "loss_a"), as_losses(loss_b, "loss_b")
    n_resamples = _check_options(n_resamples, alternative, margin)
    rng, seed = make_rng(random_state)
    pooled = np.concatenate([a - margin, b])
    # Centring keeps sum-of-squares variances accurate for losses far from zero.
    pooled -= pooled.mean()
    # One matrix product per chunk gives each re-split's sum, sum of squares and count.
    sums = np.column_stack([pooled, pooled * pooled, np.ones(pooled.size)])
    na, nb = a.size, b.size
    s1a, s2a = sums[:na, :2].sum(axis=0)
    s1b, s2b = sums[na:, :2].sum(axis=0)
    t_obs = float(_welch_t(s1a, s2a, na, s1b, s2b, nb))
    if math.isnan(t_obs):  # every row identical: no evidence either way
        t_obs = 0.0
    t_star = _resampled_t(sums, na, nb, n_resamples, rng)
    pvalue = _pvalue(t_obs, t_star, alternative)
    return PermutationResult(
        method="studentized-permutation",
        statistic=t_obs,
        pvalue=pvalue,
        alternative=alternative,
        alpha=float(alpha),
        margin=float(margin),
        n_a=int(na),
        n_b=int(nb),
        n_resamples=n_resamples,
        random_state=seed,
    )


def _check_options(n_resamples: int, alternative: str, margin: float) -> int:
    if isinstance(n_resamples, bool) or int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples}")
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(
            f"alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}"
        )
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    return int(n_resamples)


def _resampled_t(
    sums: np.ndarray, na: int, nb: int, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Welch t of ``n_resamples`` random re-splits of the pooled rows into arms of sizes
    ``na`` and ``nb``, from the rows' (value, square, 1) ``sums``; NaN (no spread) as 0."""
    total = sums.sum(axis=0)
    n = na + nb
    small_is_a = na <= nb
    k = min(na, nb)
    t_star = np.empty(n_resamples)
    step = max(2, _CHUNK_ELEMENTS // n) & ~1
    for start in range(0, n_resamples, step):
        m = min(step, n_resamples - start)
        # Raw 64-bit draws split into two 32-bit keys: the cheapest uniform keys numpy
        # offers (random floats cost several times more, and this loop is the test's cost).
        raw = rng.bit_generator.random_raw((m * n + 1) // 2)
        keys = raw.view(np.uint32)[: m * n].reshape(m, n)
        # Rows whose key is at most the k-th smallest form a uniformly random subset;
        # a (rare, p ~ n / 2**32) tie adds a row, so counts are taken, not assumed.
        mask = keys <= np.partition(keys, k - 1, axis=1)[:, k - 1 : k]
        sub = mask.astype(np.float64) @ sums
        sa, sb = (sub, total - sub) if small_is_a else (total - sub, sub)
        t_star[start : start + m] = _welch_t(
            sa[:, 0], sa[:, 1], sa[:, 2], sb[:, 0], sb[:, 1], sb[:, 2]
        )
    return np.nan_to_num(t_star, nan=0.0)


def _pvalue(t_obs: float, t_star: np.ndarray, alternative: str) -> float:
    """Monte-Carlo p-value of ``t_obs`` against the re-split statistics ``t_star``."""
    n_resamples = t_star.size
    # A relative tolerance so re-splits equal to the observed one up to rounding count as ties.
    tol = 1e-9 * max(1.0, abs(t_obs)) if math.isfinite(t_obs) else 0.0
    p_greater = (1.0 + np.count_nonzero(t_star >= t_obs - tol)) / (1.0 + n_resamples)
    p_less = (1.0 + np.count_nonzero(t_star <= t_obs + tol)) / (1.0 + n_resamples)
    # Two-sided as scipy.stats.permutation_test: the null of t is skewed, so doubling
    # the smaller tail is not the same as comparing |t|.
    pvalue = {
        "greater": p_greater,
        "less": p_less,
        "two-sided": min(1.0, 2.0 * min(p_greater, p_less)),
    }[alternative]
    return float(pvalue)
