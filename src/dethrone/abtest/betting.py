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
    path = _Path(y.shape[0], _looks(looks, y.shape[1]), alpha, tuning_n)
    sums = np.zeros((5, y.shape[0]))  # before each block: y, arm A's y, B's y, A's, B's units
    for lo in range(0, y.shape[1], BLOCK):
        hi = min(lo + BLOCK, y.shape[1])
        yk, zk, ck = np.minimum(y[:, lo:hi], cap[:, lo:hi]), z[:, lo:hi], cap[:, lo:hi]
        # predictable per-arm means of earlier units (one pseudo-unit at the pooled mean)
        n_prev = np.arange(lo, hi, dtype=float)
        before_y, before_a, before_b, units_a, units_b = (
            _before(sums, i, part)
            for i, part in enumerate((yk, np.where(zk, 0.0, yk), np.where(zk, yk, 0.0), ~zk, zk))
        )
        pool = (before_y + ck / 2) / (n_prev + 1)
        m_a = (before_a + pool) / (units_a + 1)
        m_b = (before_b + pool) / (units_b + 1)
        d = m_a - m_b
        phi = np.where(zk, -(yk - m_b) / pi, (yk - m_a) / (1 - pi)) + d
        scale = np.maximum(np.maximum(m_a, ck - m_a) / (1 - pi), np.maximum(m_b, ck - m_b) / pi)
        path.add(lo, phi, d, np.where(ck > 0, scale, 0.0))
    return path.result()


#: units computed at a time (the running sums carry over exactly): 10^6 units take
#: ~25 arrays of their size at once otherwise, 0.2 GB
BLOCK = 1 << 16


def _before(sums: np.ndarray, row: int, part: np.ndarray) -> np.ndarray:
    """Sums of ``part`` over the earlier units, from ``sums[row]`` (those before the
    block), which it moves past the block: the same additions in the same order as one
    ``cumsum`` of every unit, so the same doubles."""
    acc = np.cumsum(np.concatenate([sums[row][:, None], part], axis=1), axis=1)
    sums[row] = acc[:, -1]
    return acc[:, :-1]


def _looks(looks: ArrayLike, units: int) -> np.ndarray:
    looks = np.asarray(looks, dtype=int)
    if looks.ndim != 1 or looks.size == 0 or looks[0] < 1 or looks[-1] > units:
        raise ValueError("looks must be unit counts between 1 and the number of units")
    if np.any(np.diff(looks) <= 0):
        raise ValueError("looks must be increasing")
    return looks


class _Path:
    """The running sums of :func:`eb_path`, a block of units at a time, kept at the looks."""

    def __init__(self, experiments: int, looks: np.ndarray, alpha: float, tuning_n: float):
        self.looks, self.alpha, self.tuning_n = looks, float(alpha), float(tuning_n)
        self.log_term = math.log(2.0 / alpha)
        # before the block: tested units, xi^2, w phi, w, psi
        self.sums = np.zeros((5, experiments))
        self.kept = np.zeros((3, experiments, looks.size))

    def add(self, lo: int, phi: np.ndarray, centre: np.ndarray, scale: np.ndarray) -> None:
        """Units ``lo, lo + 1, ...`` (axis 1 of the arrays)."""
        tested = scale > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            xi = np.where(tested, np.clip((phi - centre) / scale, -1.0, 1.0), 0.0)
        # running second moment of xi over tested units before i (prior 1/4, weight 1); the
        # bet is tuned to max(units so far, tuning_n): tightest near tuning_n, shrinking after
        n_tested = _before(self.sums, 0, tested.astype(float))
        var = (0.25 + _before(self.sums, 1, xi * xi)) / (n_tested + 1)
        horizon = np.maximum(n_tested + 1, self.tuning_n)
        bet = np.sqrt(2 * self.log_term / (horizon * var))
        lam = np.where(tested, np.minimum(TRUNCATION, bet), 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(tested, lam / scale, 0.0)
        psi = xi * xi * (-np.log1p(-lam) - lam)
        at = self.looks - 1 - lo
        inside = (at >= 0) & (at < phi.shape[1])
        for i, part in enumerate((np.where(tested, w * phi, 0.0), w, psi)):
            through = _before(self.sums, 2 + i, part)  # sums before each unit...
            last = self.sums[2 + i][:, None]  # ...and through the block's last
            through = np.concatenate([through[:, 1:], last], axis=1)
            self.kept[i][:, inside] = through[:, at[inside]]

    def result(self) -> BettingPath:
        return BettingPath(
            weighted=self.kept[0],
            weight=self.kept[1],
            penalty=self.log_term + self.kept[2],
            alpha=self.alpha,
        )


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
    path = _Path(phi.shape[0], _looks(looks, phi.shape[1]), alpha, tuning_n)
    for lo in range(0, phi.shape[1], BLOCK):
        hi = min(lo + BLOCK, phi.shape[1])
        path.add(lo, phi[:, lo:hi], centre[:, lo:hi], scale[:, lo:hi])
    return path.result()


def _shift(a: np.ndarray) -> np.ndarray:
    """``a`` moved one unit later along axis 1 (0 first): sums over earlier units."""
    out = np.zeros_like(a, dtype=float)
    out[:, 1:] = a[:, :-1]
    return out
