"""Vectorised bootstrap of means and its percentile / BCa intervals.

Internal to :mod:`dethrone.abtest`: the statistic is always a mean (or a difference
of two independent means), which lets the resampling be one gather per chunk and the
BCa jackknife be computed in O(n) instead of n refits.
"""

from __future__ import annotations

import numpy as np
from scipy import special

# Bound on the index matrix of one bootstrap chunk (~32 MB of int64) so memory stays flat.
_CHUNK_ELEMENTS = 1 << 22


def make_rng(
    random_state: int | np.random.Generator | None,
) -> tuple[np.random.Generator, int | None]:
    """A generator for ``random_state`` and the int seed to record (None otherwise)."""
    if isinstance(random_state, np.random.Generator):
        return random_state, None
    if random_state is not None and (
        isinstance(random_state, bool) or int(random_state) != random_state
    ):
        raise ValueError(f"random_state must be an int, a Generator or None, got {random_state!r}")
    seed = None if random_state is None else int(random_state)
    return np.random.default_rng(seed), seed


def boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples of ``x``, vectorised in bounded-memory chunks."""
    out = np.empty(n_boot)
    step = max(1, _CHUNK_ELEMENTS // x.size)
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        idx = rng.integers(0, x.size, size=(k, x.size))
        out[start : start + k] = x[idx].mean(axis=1)
    return out


def jackknife_terms(x: np.ndarray) -> np.ndarray:
    """``theta_dot - theta_(i)`` of the leave-one-out means of ``x``, in O(n)."""
    loo = (x.sum() - x) / (x.size - 1)
    return loo.mean() - loo


def interval(
    boot: np.ndarray, estimate: float, level: float, method: str, jack: np.ndarray
) -> tuple[float, float]:
    """Two-sided ``level`` interval from bootstrap replicates (percentile or BCa)."""
    tail = (1.0 - level) / 2.0
    probs = np.array([tail, 1.0 - tail])
    if method == "bca":
        # Bias correction from the share of resamples below the estimate (ties count
        # half), acceleration from the jackknife skewness (Efron 1987; as scipy).
        share = ((boot < estimate).sum() + (boot <= estimate).sum()) / (2.0 * boot.size)
        z0 = special.ndtri(share)
        denom = (jack**2).sum() ** 1.5
        accel = (jack**3).sum() / (6.0 * denom) if denom > 0 else 0.0
        z = special.ndtri(probs)
        adj = special.ndtr(z0 + (z0 + z) / (1.0 - accel * (z0 + z)))
        # A degenerate bootstrap (all resamples on one side) has no finite correction.
        if np.all(np.isfinite(adj)):
            probs = adj
    low, high = np.quantile(boot, probs)
    return float(low), float(high)
