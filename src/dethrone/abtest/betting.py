"""Betting confidence sequences for a randomised two-arm difference of bounded losses.

Every unit ``i`` (in order of arrival) is assigned to the challenger with the known
probability ``pi`` (the configured split) and has a loss ``Y_i``, clipped to ``[0, C_i]``
where the cap ``C_i`` is *predictable*: fixed before the first look (e.g. a high quantile
of the champion's offline losses) or computed from earlier units only. With predictable
per-arm means ``m_A``, ``m_B`` (of earlier units), the augmented inverse-propensity
pseudo-outcome

.. math::

    \\phi_i = \\frac{1 - Z_i}{1 - \\pi}(y_i - m_A) - \\frac{Z_i}{\\pi}(y_i - m_B) + (m_A - m_B)

has conditional mean ``theta = E[y^A] - E[y^B]`` (the champion's minus the challenger's
capped mean loss: positive means the challenger is better) whatever the split, and lies in
``[d - s_i, d + s_i]`` with ``d = m_A - m_B`` and the predictable scale
``s_i = max(m_A, C - m_A) / (1 - pi) ∨ max(m_B, C - m_B) / pi``. With ``xi_i = (phi_i -
d) / s_i`` in ``[-1, 1]`` and bets ``lambda_i`` in ``[0, c]`` fixed before unit ``i``,

.. math::

    K_t^{\\pm}(\\theta) = \\prod_{i \\le t} \\exp\\left(\\pm \\frac{\\lambda_i}{s_i}
        (\\phi_i - \\theta) - \\xi_i^2 \\left(-\\log(1 - \\lambda_i) - \\lambda_i\\right)\\right)

are nonnegative supermartingales at the true ``theta`` (Fan, Grama and Liu 2015, Lemma
4.1; Howard et al. 2021; the predictable plug-in empirical-Bernstein CS of Waudby-Smith and
Ramdas 2024, Theorem 2, here with a per-unit scale). By Ville's inequality the set where
both stay below ``2 / alpha`` is a ``1 - alpha`` confidence sequence, in closed form:

.. math::

    \\theta \\in \\frac{\\sum w_i \\phi_i \\mp \\left(\\log(2/\\alpha) + \\sum \\psi_i\\right)}
                       {\\sum w_i},
    \\quad w_i = \\lambda_i / s_i,\\; \\psi_i = \\xi_i^2 (-\\log(1 - \\lambda_i) - \\lambda_i)

with ``lambda_i = min(c, sqrt(2 log(2/alpha) / (n* sigma_{i-1}^2)))``, ``sigma^2`` the
running mean of ``xi^2`` (prior 1/4, one pseudo-observation; the ``fixed_n`` bet of the
``confseq`` package's ``lambda_predmix_eb``), tightest near ``n*`` units.

What is proven: for each candidate ``theta`` with ``E[phi_i | past] = theta`` for every
``i`` (units exchangeable and independent of the past, assignment Bernoulli(pi)), the
coverage holds at every look simultaneously, for any loss distribution, any split and any
cap rule that only uses earlier units. Under equal models the capped means are equal for
every cap, so ``theta = 0`` exactly: false promotion and false keep are at most
``alpha / 2`` each. Not proven: under unequal models the cap changes the estimand (the
difference of *capped* means, averaged over the caps used); a challenger that is better in
the bulk but has a heavier tail beyond the cap can look better. And a unit's loss must be
final when it is counted: a look that recomputes a unit's mean over more rows later is
an approximation (measured in the calibration benchmark).

Every function broadcasts over a leading axis of experiments, so simulations run the
exact decision formulas on thousands of experiments at once.

References
----------
Waudby-Smith, I., Ramdas, A. (2024). Estimating means of bounded random variables by
betting. JRSS-B 86(1). Howard, S. R., Ramdas, A., McAuliffe, J., Sekhon, J. (2021).
Time-uniform, nonparametric, nonasymptotic confidence sequences. Ann. Statist. 49(2).
Fan, X., Grama, I., Liu, Q. (2015). Exponential inequalities for martingales with
applications. Electron. J. Probab. 20.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["BettingPath", "betting_difference_cs", "betting_paired_cs", "eb_path", "epoch_caps"]

#: bets never exceed this (Waudby-Smith & Ramdas use 1/2 or 3/4)
TRUNCATION = 0.5
#: units before the first cap computed from earlier units (no fixed cap given)
FIRST_EPOCH = 32


@dataclass(frozen=True)
class BettingPath:
    """Running sums of a betting CS at chosen looks; arrays of shape (experiments, looks).

    ``low``/``high``/``estimate`` are the interval and its centre; :meth:`pvalue` tests
    any null. ``weight`` is ``sum w_i``, ``penalty`` is ``log(2/alpha) + sum psi_i``.
    """

    weighted: np.ndarray
    weight: np.ndarray
    penalty: np.ndarray
    alpha: float

    @property
    def estimate(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.weighted / self.weight

    @property
    def low(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight > 0, (self.weighted - self.penalty) / self.weight, -np.inf)

    @property
    def high(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.weight > 0, (self.weighted + self.penalty) / self.weight, np.inf)

    def pvalue(self, null: ArrayLike = 0.0) -> np.ndarray:
        """Always-valid two-sided p-value of ``theta = null``: ``min(1, 2 / max K^+-)``.

        ``p < alpha`` exactly when ``null`` is outside ``[low, high]``.
        """
        gap = np.abs(self.weighted - np.asarray(null, dtype=float) * self.weight)
        log_k = gap - (self.penalty - math.log(2.0 / self.alpha))
        return np.minimum(1.0, 2.0 * np.exp(-np.maximum(log_k, -700.0)))


def epoch_caps(
    losses: np.ndarray,
    quantile: float,
    *,
    source: ArrayLike | None = None,
    first: int = FIRST_EPOCH,
) -> np.ndarray:
    """Predictable caps: units ``[2^k, 2^(k+1))`` are capped at the ``quantile`` of the
    earlier units ``[0, 2^k)`` where ``source`` is true (all by default; the champion's
    in a decision), or at their max when that quantile is 0 (rare events). Units before
    ``first`` get 0 (not tested), as do epochs with no earlier source unit.

    >>> epoch_caps(np.array([[1.0, 5, 2, 8, 3, 9, 4, 7]]), 0.5, first=2).tolist()
    [[0.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0]]
    """
    losses = np.atleast_2d(np.asarray(losses, dtype=float))
    mask = np.ones(losses.shape, bool) if source is None else np.atleast_2d(source)
    values = np.where(mask, losses, np.nan)
    caps = np.zeros(losses.shape)
    start = first
    while start < losses.shape[1]:
        past = values[:, :start]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanquantile(past, quantile, axis=1, method="higher")
            top = np.nanmax(past, axis=1)
        q = np.where(q > 0, q, top)
        caps[:, start : 2 * start] = np.nan_to_num(q, nan=0.0)[:, None]
        start *= 2
    return caps


def betting_difference_cs(
    losses: ArrayLike,
    challenger: ArrayLike,
    share_b: float,
    looks: ArrayLike,
    *,
    caps: ArrayLike,
    alpha: float = 0.05,
    tuning_n: float = 5000,
) -> BettingPath:
    """CS of ``theta = capped mean loss of arm A - of arm B`` at each look.

    Parameters
    ----------
    losses : array_like, shape (experiments, units) or (units,)
        Each unit's loss (>= 0), in order of arrival.
    challenger : array_like of bool, same shape
        True where the unit was assigned to arm B (the challenger).
    share_b : float
        Known assignment probability of arm B, in (0, 1).
    looks : array_like of int
        Units (both arms) seen at each look, increasing, each <= units.
    caps : array_like
        Predictable cap of each unit (broadcast to ``losses``); 0 means "not tested".
    alpha, tuning_n : float
        Level, and units (both arms) from which the bets shrink like ``1/sqrt(n)``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.random(4000) < 0.1                  # 90/10 split
    >>> y = rng.lognormal(0, 1, 4000) * np.where(z, 0.7, 1.0)   # challenger 30% better
    >>> cs = betting_difference_cs(y, z, 0.1, [1000, 4000], caps=20.0)
    >>> bool(cs.low[0, 0] < 0 < cs.high[0, 0]), bool(cs.low[0, 1] > 0)
    (True, True)
    """
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    z = np.atleast_2d(np.asarray(challenger, dtype=bool))
    cap = np.broadcast_to(np.asarray(caps, dtype=float), y.shape)
    pi = float(share_b)
    if not 0.0 < pi < 1.0:
        raise ValueError(f"share_b must be in (0, 1), got {pi}")
    y = np.minimum(y, cap)
    # predictable per-arm means of earlier units (one pseudo-unit at the pooled mean)
    n_prev = np.arange(y.shape[1], dtype=float)
    pool = (_shift(np.cumsum(y, axis=1)) + cap / 2) / (n_prev + 1)
    ya, yb = np.where(z, 0.0, y), np.where(z, y, 0.0)
    m_a = (_shift(np.cumsum(ya, axis=1)) + pool) / (_shift(np.cumsum(~z, axis=1)) + 1)
    m_b = (_shift(np.cumsum(yb, axis=1)) + pool) / (_shift(np.cumsum(z, axis=1)) + 1)
    d = m_a - m_b
    phi = np.where(z, -(y - m_b) / pi, (y - m_a) / (1 - pi)) + d
    scale = np.maximum(np.maximum(m_a, cap - m_a) / (1 - pi), np.maximum(m_b, cap - m_b) / pi)
    return eb_path(phi, d, np.where(cap > 0, scale, 0.0), looks, alpha=alpha, tuning_n=tuning_n)


def betting_paired_cs(
    differences: ArrayLike,
    looks: ArrayLike,
    *,
    caps: ArrayLike,
    alpha: float = 0.05,
    tuning_n: float = 5000,
) -> BettingPath:
    """CS of the mean paired difference ``min(y_A, C) - min(y_B, C)`` (shadow mode).

    ``differences`` holds the two capped losses stacked on the last axis
    (``[..., 0]`` champion, ``[..., 1]`` challenger), each unit's pair in arrival order.

    >>> rng = np.random.default_rng(2)
    >>> e = rng.lognormal(0, 1, 2000)
    >>> pairs = np.stack([e, 0.8 * e], axis=-1)           # challenger 20% better
    >>> cs = betting_paired_cs(pairs, [2000], caps=10.0)
    >>> bool(cs.low[0, 0] > 0)
    True
    """
    pairs = np.asarray(differences, dtype=float)
    if pairs.ndim == 2:
        pairs = pairs[None]
    cap = np.broadcast_to(np.asarray(caps, dtype=float), pairs.shape[:2])
    x = np.minimum(pairs[..., 0], cap) - np.minimum(pairs[..., 1], cap)
    n_prev = np.arange(x.shape[1], dtype=float)
    centre = _shift(np.cumsum(x, axis=1)) / (n_prev + 1)
    scale = np.where(cap > 0, cap + np.abs(centre), 0.0)
    return eb_path(x, centre, scale, looks, alpha=alpha, tuning_n=tuning_n)


def eb_path(
    phi: np.ndarray,
    centre: np.ndarray,
    scale: np.ndarray,
    looks: ArrayLike,
    *,
    alpha: float,
    tuning_n: float,
) -> BettingPath:
    """The CS of observations ``phi`` with common conditional mean, predictable
    ``centre`` and ``scale`` (``|phi - centre| <= scale``; scale 0: not tested)."""
    looks = np.asarray(looks, dtype=int)
    if looks.ndim != 1 or looks.size == 0 or looks[0] < 1 or looks[-1] > phi.shape[1]:
        raise ValueError("looks must be unit counts between 1 and the number of units")
    if np.any(np.diff(looks) <= 0):
        raise ValueError("looks must be increasing")
    tested = scale > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = np.where(tested, np.clip((phi - centre) / scale, -1.0, 1.0), 0.0)
    log_term = math.log(2.0 / alpha)
    # running second moment of xi over tested units before i (prior 1/4, weight 1); the
    # bet is tuned to max(units so far, tuning_n): tightest near tuning_n, shrinking after
    n_tested = _shift(np.cumsum(tested, axis=1))
    var = (0.25 + _shift(np.cumsum(xi * xi, axis=1))) / (n_tested + 1)
    horizon = np.maximum(n_tested + 1, float(tuning_n))
    lam = np.where(tested, np.minimum(TRUNCATION, np.sqrt(2 * log_term / (horizon * var))), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(tested, lam / scale, 0.0)
    psi = xi * xi * (-np.log1p(-lam) - lam)
    idx = looks - 1
    return BettingPath(
        weighted=np.cumsum(np.where(tested, w * phi, 0.0), axis=1)[:, idx],
        weight=np.cumsum(w, axis=1)[:, idx],
        penalty=log_term + np.cumsum(psi, axis=1)[:, idx],
        alpha=float(alpha),
    )


def _shift(a: np.ndarray) -> np.ndarray:
    """``a`` moved one unit later along axis 1 (0 first): sums over earlier units."""
    out = np.zeros_like(a, dtype=float)
    out[:, 1:] = a[:, :-1]
    return out
