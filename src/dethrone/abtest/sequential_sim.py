"""Vectorised Monte-Carlo of peeking: many experiments, many looks, one numpy pass.

Used by the calibration tests and ``bench/sequential_calibration.py`` to measure the error
rates of :func:`~dethrone.abtest.decide_sequential` (through the same formulas,
:mod:`dethrone.abtest.confseq`) and of a fixed-horizon Welch test applied at every look.
Rows are experiments, columns are observations in arrival order.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> a, b = rng.normal(size=(2, 500, 1000))           # 500 A/A experiments
>>> looks = np.arange(100, 1001, 100)                # 10 looks per arm
>>> sa, sb = look_stats(a, looks), look_stats(b, looks)
>>> est, low, high, p = sequential_cs(sa, sb, alpha=0.05, tuning_n=2000)
>>> bool((low > 0).any(axis=1).mean() <= 0.05)       # ever "promoted" under peeking
True
"""

from __future__ import annotations

import numpy as np
from scipy import special

from dethrone.abtest.confseq import mean_difference_cs, mixture_rho2

__all__ = [
    "LookStats",
    "first_look",
    "fixed_horizon_n",
    "look_stats",
    "sequential_cs",
    "welch_pvalue",
]

#: (mean, sample variance, n), each of shape (experiments, looks).
LookStats = tuple[np.ndarray, np.ndarray, np.ndarray]


def look_stats(x: np.ndarray, looks: np.ndarray) -> LookStats:
    """Running mean and sample variance (ddof=1) of each row after ``looks`` observations."""
    looks = np.asarray(looks, dtype=int)
    if (
        looks.ndim != 1
        or looks.size == 0
        or looks[0] < 2
        or np.any(np.diff(looks) <= 0)
        or looks[-1] > x.shape[1]
    ):
        raise ValueError("looks must be increasing sizes between 2 and the number of columns")
    # Centre on each row's first value: the running sums of squares then stay small
    # relative to the variance, which keeps the one-pass variance accurate.
    centred = x - x[:, :1]
    s1 = np.cumsum(centred, axis=1)[:, looks - 1]
    s2 = np.cumsum(centred * centred, axis=1)[:, looks - 1]
    n = np.broadcast_to(looks.astype(float), s1.shape)
    mean = s1 / n
    var = np.maximum(s2 - s1 * mean, 0.0) / (n - 1)
    return mean + x[:, :1], var, n


def sequential_cs(
    stats_a: LookStats, stats_b: LookStats, *, alpha: float, tuning_n: float, margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Always-valid interval of ``mean_a - mean_b`` at every look (as decide_sequential)."""
    return mean_difference_cs(
        *stats_a, *stats_b, alpha=alpha, rho2=mixture_rho2(tuning_n, alpha), null=margin
    )


def welch_pvalue(stats_a: LookStats, stats_b: LookStats, margin: float = 0.0) -> np.ndarray:
    """One-sided Welch p-value of ``H1: mean_a - mean_b > margin`` at every look."""
    (ma, va, na), (mb, vb, nb) = stats_a, stats_b
    ea, eb = va / na, vb / nb
    se2 = ea + eb
    df = se2**2 / (ea**2 / (na - 1) + eb**2 / (nb - 1))
    return special.stdtr(df, -(ma - mb - margin) / np.sqrt(se2))


def first_look(mask: np.ndarray) -> np.ndarray:
    """Index of the first look at which ``mask`` is true per experiment, -1 if never."""
    return np.where(mask.any(axis=1), mask.argmax(axis=1), -1)


def fixed_horizon_n(
    var_a: float, var_b: float, delta: float, *, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Rows per arm for a one-sided z-test of level ``alpha`` to reach ``power`` at ``delta``.

    >>> round(fixed_horizon_n(1.0, 1.0, 0.1))
    1237
    """
    z = special.ndtri(1 - alpha) + special.ndtri(power)
    return float(z * z * (var_a + var_b) / delta**2)
