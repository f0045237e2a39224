"""Gaussian-mixture confidence sequences: intervals that stay valid under peeking.

A confidence sequence (CS) is a sequence of intervals ``C_n`` with
``P(theta in C_n for every n) >= 1 - alpha``: the guarantee holds simultaneously at all
sample sizes, so the data may be looked at after every batch and the experiment stopped
whenever the interval excludes the null, at no cost in false positives.

The asymptotic CS of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas (2024, eq. 9), built
on Robbins' normal-mixture boundary (Howard, Ramdas, McAuliffe and Sekhon 2021, Prop. 5),
has the radius, for the mean of ``n`` observations of variance ``sigma**2``,

.. math::

    r_n = \\sigma \\sqrt{\\frac{2 (n \\rho^2 + 1)}{n^2 \\rho^2}
          \\log\\frac{\\sqrt{n \\rho^2 + 1}}{\\alpha}}

and the mixing variance ``rho**2`` is tuned so the radius is smallest near ``n = n*``
(the "estimated sample size" of GrowthBook, default 5,000; Waudby-Smith et al. eq. 161):

.. math::

    \\rho^2 = \\frac{-2 \\log \\alpha + \\log(1 - 2 \\log \\alpha)}{n^*}

The always-valid p-value of ``H0: theta = theta0`` is the reciprocal of the mixture
martingale (an e-value), capped at 1:

.. math::

    p_n = \\min\\left(1, \\sqrt{n \\rho^2 + 1}
          \\exp\\left(-\\frac{n^2 \\rho^2 (\\hat\\theta_n - \\theta_0)^2}
                              {2 \\sigma^2 (n \\rho^2 + 1)}\\right)\\right)

so ``p_n < alpha`` exactly when ``theta0`` lies outside ``[theta_n - r_n, theta_n + r_n]``
(same ``rho``). For two arms (GrowthBook's ``SequentialTwoSidedTTest``) ``n`` is the total
``n_a + n_b`` and ``sigma**2 = n * (s_a**2 / n_a + s_b**2 / n_b)``, so that
``sigma**2 / n`` is the Welch variance of the difference of means.

Every function here broadcasts over numpy arrays, so a simulation can evaluate thousands
of experiments at once with the very formulas the decision uses.

References
----------
Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021). Time-uniform, nonparametric,
nonasymptotic confidence sequences. Annals of Statistics 49(2), 1055-1080.
Waudby-Smith, I., Arbour, D., Sinha, R., Kennedy, E. H., Ramdas, A. (2024). Time-uniform
central limit theory and asymptotic confidence sequences. Annals of Statistics 52(6).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = [
    "group_index",
    "mean_cs",
    "mean_difference_cs",
    "mixture_pvalue",
    "mixture_radius",
    "mixture_rho2",
    "unit_means",
]


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return alpha


def mixture_rho2(tuning_n: float, alpha: float = 0.05) -> float:
    """Mixing variance ``rho**2`` that makes the CS tightest near ``tuning_n`` observations.

    >>> round(mixture_rho2(5000, 0.05), 10)
    0.0015872309
    """
    alpha = _check_alpha(alpha)
    if not (np.isfinite(tuning_n) and tuning_n > 0):
        raise ValueError(f"tuning_n must be a positive number, got {tuning_n}")
    two_log = -2.0 * np.log(alpha)
    return float((two_log + np.log(two_log + 1.0)) / tuning_n)


def mixture_radius(
    n: ArrayLike, variance: ArrayLike, *, alpha: float = 0.05, rho2: float
) -> np.ndarray:
    """Radius of the normal-mixture CS for a mean of ``n`` observations of ``variance``.

    Parameters
    ----------
    n : array_like
        Number of observations (> 0).
    variance : array_like
        Per-observation variance ``sigma**2`` (>= 0).
    alpha : float, default 0.05
        1 - simultaneous coverage.
    rho2 : float
        Mixing variance, see :func:`mixture_rho2`.

    Examples
    --------
    The radius is wider than the fixed-n 95% interval (1.96 standard errors), the
    price of validity at every n:

    >>> n, var = 5000, 4.0
    >>> r = float(mixture_radius(n, var, rho2=mixture_rho2(5000)))
    >>> round(float(r / np.sqrt(var / n)), 4)
    3.0352
    """
    alpha = _check_alpha(alpha)
    n = np.asarray(n, dtype=float)
    t = n * rho2 + 1.0
    return np.sqrt(
        np.asarray(variance, dtype=float) * 2.0 * t / (n * n * rho2) * np.log(np.sqrt(t) / alpha)
    )


def mixture_pvalue(
    estimate: ArrayLike, n: ArrayLike, variance: ArrayLike, *, rho2: float, null: ArrayLike = 0.0
) -> np.ndarray:
    """Always-valid two-sided p-value of ``H0: theta = null`` (1 / mixture e-value).

    ``p < alpha`` exactly when ``null`` is outside the CS of the same ``rho2``. A zero
    variance gives 0 when the estimate differs from the null and 1 when it equals it.

    >>> p = mixture_pvalue(0.1, 5000, 4.0, rho2=mixture_rho2(5000))
    >>> round(float(p), 6)
    0.011614
    """
    est = np.asarray(estimate, dtype=float) - np.asarray(null, dtype=float)
    n = np.asarray(n, dtype=float)
    var = np.asarray(variance, dtype=float)
    t = n * rho2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        expo = -(n * n * rho2 * est * est) / (2.0 * var * t)
    # 0/0 (no spread, no difference) is no evidence at all: p = 1.
    expo = np.where(np.isnan(expo), 0.0, expo)
    return np.minimum(1.0, np.sqrt(t) * np.exp(expo))


def mean_cs(
    mean: ArrayLike,
    var: ArrayLike,
    n: ArrayLike,
    *,
    alpha: float,
    rho2: float,
    null: ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CS of a mean from its sample mean, sample variance (ddof=1) and size.

    Used on paired differences (shadow mode): ``mean`` is the mean of
    ``loss_champion - loss_challenger``.

    Returns
    -------
    estimate, low, high, pvalue : ndarray
        ``pvalue`` tests ``H0: mean = null``.

    >>> est, low, high, p = mean_cs(0.1, 1.0, 1000, alpha=0.05, rho2=mixture_rho2(5000))
    >>> print(f"[{float(low):.4f}, {float(high):.4f}] p={float(p):.4f}")
    [-0.0064, 0.2064] p=0.0749
    """
    est = np.asarray(mean, dtype=float)
    radius = mixture_radius(n, var, alpha=alpha, rho2=rho2)
    return est, est - radius, est + radius, mixture_pvalue(est, n, var, rho2=rho2, null=null)


def mean_difference_cs(
    mean_a: ArrayLike,
    var_a: ArrayLike,
    n_a: ArrayLike,
    mean_b: ArrayLike,
    var_b: ArrayLike,
    n_b: ArrayLike,
    *,
    alpha: float,
    rho2: float,
    null: ArrayLike = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CS of ``mean_a - mean_b`` from summary statistics of two independent samples.

    ``var_a`` and ``var_b`` are sample variances (ddof=1); ``n = n_a + n_b`` and
    ``sigma**2 = n * (var_a / n_a + var_b / n_b)`` as in GrowthBook.

    Returns
    -------
    estimate, low, high, pvalue : ndarray
        ``pvalue`` tests ``H0: mean_a - mean_b = null``.

    Examples
    --------
    >>> est, low, high, p = mean_difference_cs(1.0, 4.0, 2500, 0.8, 4.0, 2500,
    ...                                        alpha=0.05, rho2=mixture_rho2(5000))
    >>> print(f"{float(est):.2f} [{float(low):.4f}, {float(high):.4f}] p={float(p):.4f}")
    0.20 [0.0283, 0.3717] p=0.0116
    """
    n_a, n_b = np.asarray(n_a, dtype=float), np.asarray(n_b, dtype=float)
    n = n_a + n_b
    variance = n * (np.asarray(var_a, dtype=float) / n_a + np.asarray(var_b, dtype=float) / n_b)
    est = np.asarray(mean_a, dtype=float) - np.asarray(mean_b, dtype=float)
    return mean_cs(est, variance, n, alpha=alpha, rho2=rho2, null=null)


def group_index(
    units: ArrayLike, n_rows: int, *, name: str = "units"
) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's unit (0..n_units-1) and the rows per unit.

    Computed once per arm, so the loss and every guardrail are grouped by one hash pass.
    """
    ids = np.asarray(units)
    if ids.ndim != 1 or ids.size != n_rows:
        raise ValueError(
            f"{name} must be a 1-D array with one unit id per row "
            f"({n_rows} rows), got shape {ids.shape}"
        )
    # Hashing (pandas.factorize) is O(rows); np.unique would sort, ~10x slower at 1e6 rows.
    inverse, _ = pd.factorize(ids, use_na_sentinel=True)
    if inverse.size and inverse.min() < 0:
        raise ValueError(f"{name} has missing (NaN or None) unit ids")
    return inverse, np.bincount(inverse)


def unit_means(
    values: ArrayLike, units: ArrayLike, *, name: str = "units"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per unit id (in order of first appearance), and rows per unit.

    Rows of one sticky unit (a user, a session) are correlated, so the unit is the
    independent observation: its mean loss enters the analysis once.

    >>> means, rows = unit_means([1.0, 3.0, 5.0], ["u1", "u2", "u1"])
    >>> means.tolist(), rows.tolist()
    ([3.0, 3.0], [2, 1])
    """
    values = np.asarray(values, dtype=float)
    inverse, rows = group_index(units, values.size, name=name)
    return np.bincount(inverse, weights=values) / rows, rows
