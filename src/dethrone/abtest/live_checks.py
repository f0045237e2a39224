"""Always-valid checks of a live experiment besides the loss: proportions per arm.

Label coverage (labelled share of served rows), error rate (failed or dropped
predictions) and the share of requests slower than the champion's p99 latency are all
proportions in ``[0, 1]``, so the betting CS of :mod:`dethrone.abtest.betting` applies with
no cap at all (the bound is 1): every test here is **proven** valid at any split, at every
look, for units exchangeable and assigned with the configured split (Ville's inequality).

* :func:`proportion_difference` - the CS of ``p_B - p_A`` (challenger minus champion) from
  per-unit shares in arrival order, two-sided at level ``alpha``.
* label coverage: *differs* when the CS excludes ``[-margin, margin]``
  (default margin ``LABEL_COVERAGE_MARGIN`` = 1 point).
* error rate: *harm* when the CS lies above ``margin`` (``ERROR_RATE_MARGIN`` = 0.5 point).
* p99 latency: the share of each arm's requests above the champion's p99 (the 0.99
  quantile of the champion's *earlier* requests, recomputed at 32, 64, 128, ... requests,
  so the reference is predictable); *harm* when ``p_B - p_A`` is shown above ``margin``
  (``LATENCY_P99_MARGIN`` = 1 point: 2% of the challenger's requests above the champion's
  p99 instead of 1%).

>>> rng = np.random.default_rng(0)
>>> z = rng.random(3000) < 0.5
>>> failed = rng.random(3000) < np.where(z, 0.05, 0.01)      # challenger fails 5x more
>>> t = proportion_difference(failed, z, 0.5, name="error rate", margin=0.005)
>>> t.harm, round(t.estimate, 3) > 0
(True, True)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from dethrone.abtest.betting import betting_difference_cs, epoch_caps

__all__ = ["ProportionTest", "exceeds_reference", "proportion_difference"]


def _num(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


@dataclass(frozen=True)
class ProportionTest:
    """Always-valid comparison of a proportion between arm A (champion) and arm B.

    ``estimate``, ``low``, ``high``: the CS of ``p_B - p_A``; ``harm``: ``low > margin``;
    ``differs``: the CS excludes ``[-margin, margin]``; ``p_a``/``p_b``: plain shares.
    """

    name: str
    p_a: float
    p_b: float
    estimate: float
    low: float
    high: float
    margin: float
    alpha: float
    n_a: int
    n_b: int
    harm: bool
    differs: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (non-finite floats become None)."""
        return {k: _num(v) for k, v in asdict(self).items()}

    def reason(self, unit: str = "share of units") -> str:
        """One sentence naming the metric, its unit and the numbers."""
        return (
            f"{self.name} ({unit}): champion {self.p_a:.4g} vs challenger {self.p_b:.4g} "
            f"({self.n_a}/{self.n_b} units), always-valid {100 * (1 - self.alpha):g}% "
            f"interval of the difference [{self.low:.4g}, {self.high:.4g}], margin "
            f"{self.margin:g}"
        )


def proportion_difference(
    values: ArrayLike,
    challenger: ArrayLike,
    share_b: float,
    *,
    name: str,
    margin: float = 0.0,
    alpha: float = 0.05,
    tuning_n: float = 5000,
) -> ProportionTest:
    """Always-valid CS of ``p_B - p_A`` from per-unit values in ``[0, 1]`` in arrival order.

    Parameters
    ----------
    values : array_like
        Each unit's share (or 0/1 indicator), in order of arrival.
    challenger : array_like of bool
        True for units of arm B.
    share_b : float
        Configured share of arm B, in (0, 1).
    name : str
        Name of the metric (in the reason).
    margin, alpha, tuning_n : float
        Tolerated difference, level, units where the CS is tightest.
    """
    x = np.asarray(values, dtype=float)
    z = np.asarray(challenger, dtype=bool)
    if x.ndim != 1 or x.shape != z.shape:
        raise ValueError(f"{name}: values and challenger must be 1-D of the same length")
    if x.size and (np.nanmin(x) < 0 or np.nanmax(x) > 1 or np.isnan(x).any()):
        raise ValueError(f"{name}: values must be shares in [0, 1]")
    n_a, n_b = int((~z).sum()), int(z.sum())
    p_a = float(x[~z].mean()) if n_a else math.nan
    p_b = float(x[z].mean()) if n_b else math.nan
    if n_a == 0 or n_b == 0:
        est = low = high = math.nan
    else:
        # the betting CS of the champion minus challenger "loss" x, bound 1, no cap needed
        cs = betting_difference_cs(
            x, z, share_b, [x.size], caps=1.0, alpha=alpha, tuning_n=tuning_n
        )
        est, low, high = -float(cs.estimate[0, 0]), -float(cs.high[0, 0]), -float(cs.low[0, 0])
    return ProportionTest(
        name=name,
        p_a=p_a,
        p_b=p_b,
        estimate=est,
        low=low,
        high=high,
        margin=float(margin),
        alpha=float(alpha),
        n_a=n_a,
        n_b=n_b,
        harm=bool(low > margin),
        differs=bool(low > margin or high < -margin),
    )


def exceeds_reference(
    values: ArrayLike, reference_rows: ArrayLike, quantile: float = 0.99
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each value (in arrival order) exceeds the ``quantile`` of the *earlier*
    values where ``reference_rows`` is true (the champion's requests), and which rows have
    a reference yet (the first 32 do not).

    >>> over, tested = exceeds_reference(np.arange(100.0), np.ones(100, bool), 0.5)
    >>> int(tested.sum()), bool(over[40]), bool(over[90])
    (68, True, True)
    """
    v = np.asarray(values, dtype=float)
    ref = epoch_caps(v, quantile, source=np.asarray(reference_rows, dtype=bool))[0]
    tested = ref > 0
    return (v > ref) & tested, tested
