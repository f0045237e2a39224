"""Two-sample comparisons of per-row losses: Welch (unpaired) and paired t-tests.

Sign convention, the same as ``scipy.stats.ttest_ind(loss_a, loss_b)``: the difference
is ``diff = mean_a - mean_b`` (champion minus challenger), so a *positive* difference
means the challenger has the lower loss, and ``alternative="greater"`` (the default)
asks "is the challenger better by more than ``margin``?".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from dethrone.abtest.bootstrap import boot_means, interval, jackknife_terms, make_rng
from dethrone.abtest.serialize import ResultMixin

__all__ = ["ComparisonResult", "compare_unpaired", "compare_paired"]

Alternative = Literal["greater", "less", "two-sided"]
CIMethod = Literal["bca", "percentile"]
_ALTERNATIVES = ("greater", "less", "two-sided")


class SignificanceMixin(ResultMixin):
    """``significant``, also in ``to_dict``, for results with ``pvalue`` and ``alpha``."""

    __slots__ = ()
    if TYPE_CHECKING:  # what the dataclasses mixing this in provide
        pvalue: float
        alpha: float

    @property
    def significant(self) -> bool:
        """True when ``pvalue < alpha``."""
        return bool(self.pvalue < self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (non-finite floats become None, as JSON has no NaN)."""
        return {**super().to_dict(), "significant": self.significant}


@dataclass(frozen=True)
class ComparisonResult(SignificanceMixin):
    """Result of :func:`compare_unpaired` or :func:`compare_paired`.

    Attributes
    ----------
    method : str
        ``"welch"`` or ``"paired-t"``.
    statistic, pvalue, df : float
        t statistic of ``diff - margin``, its p-value under ``alternative``, and the
        degrees of freedom (Welch–Satterthwaite, or ``n - 1`` when paired).
    alternative : str
        ``"greater"``: H1 is ``diff > margin`` (challenger better); ``"less"``: H1 is
        ``diff < margin``; ``"two-sided"``: H1 is ``diff != margin``.
    mean_a, mean_b : float
        Mean loss of the champion (A) and the challenger (B).
    diff : float
        ``mean_a - mean_b``; positive when the challenger has the lower loss.
    ci_low, ci_high : float or None
        Bootstrap confidence interval of ``diff`` (None when ``n_boot == 0``).
    ci_level : float
        Two-sided coverage of the interval: ``1 - 2*alpha`` for one-sided
        alternatives (its lower end is then the one-sided ``1 - alpha`` bound that
        matches the test), ``1 - alpha`` for two-sided.
    ci_method : str
        ``"bca"`` or ``"percentile"``.
    relative_improvement : float
        ``diff / mean_a`` (NaN when ``mean_a == 0``): 0.1 means 10% lower loss.
    alpha, margin : float
        Significance level and the tested margin, in loss units.
    n_a, n_b : int
        Rows per arm (equal when paired).
    n_boot : int
        Bootstrap resamples.
    random_state : int or None
        Seed of the bootstrap when one was given as an int.
    """

    method: str
    statistic: float
    pvalue: float
    df: float
    alternative: str
    mean_a: float
    mean_b: float
    diff: float
    ci_low: float | None
    ci_high: float | None
    ci_level: float
    ci_method: str
    relative_improvement: float
    alpha: float
    margin: float
    n_a: int
    n_b: int
    n_boot: int
    random_state: int | None


def as_losses(values: ArrayLike, name: str, *, min_rows: int = 2) -> np.ndarray:
    """Validate per-row values: 1-D, numeric, finite, at least ``min_rows`` rows."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-row values, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN or infinite value(s), "
            f"first at row {int(np.argmax(bad))}"
        )
    if arr.size < min_rows:
        raise ValueError(
            f"{name} has {arr.size} row(s); at least {min_rows} are needed to estimate a variance"
        )
    return arr


def _check_options(
    alpha: float, margin: float, alternative: str, n_boot: int, ci_method: str
) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if not math.isfinite(margin):
        raise ValueError(f"margin must be finite, got {margin}")
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    if int(n_boot) != n_boot or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot}")
    if ci_method not in ("bca", "percentile"):
        raise ValueError(f"ci_method must be 'bca' or 'percentile', got {ci_method!r}")


def t_pvalue(t: float, df: float, effect: float, alternative: str) -> tuple[float, float]:
    """Statistic and p-value of a t test; a zero standard error is handled as a limit.

    ``t`` is NaN when the standard error is zero: then every row of an arm is the
    same, and the difference ``effect`` (estimate minus margin) is known exactly.
    """
    if math.isnan(t):
        t = math.copysign(math.inf, effect) if effect != 0 else 0.0
    if alternative == "greater":
        p = special.stdtr(df, -t)
    elif alternative == "less":
        p = special.stdtr(df, t)
    else:
        p = 2.0 * special.stdtr(df, -abs(t))
    return float(t), float(min(p, 1.0))


def _level(alpha: float, alternative: str, confidence_level: float | None) -> float:
    if confidence_level is None:
        return 1.0 - alpha if alternative == "two-sided" else 1.0 - 2.0 * alpha
    if not 0.0 < confidence_level < 1.0:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    return float(confidence_level)


def welch_se_df(var_a: Any, n_a: Any, var_b: Any, n_b: Any) -> tuple[Any, Any]:
    """Standard error of ``mean_a - mean_b`` and the Welch-Satterthwaite degrees of freedom.

    Takes each arm's sample variance (``ddof=1``) and size; works on scalars and,
    elementwise, on arrays (the permutation test's resamples). When both variances are
    zero the df falls back to ``n_a + n_b - 2`` (the t statistic is undefined anyway).

    >>> se, df = welch_se_df(4.0, 10, 4.0, 10)
    >>> round(float(se), 4), float(df)
    (0.8944, 18.0)
    """
    ua, ub = np.divide(var_a, n_a), np.divide(var_b, n_b)
    se = np.sqrt(ua + ub)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (ua + ub) ** 2 / (ua**2 / np.subtract(n_a, 1) + ub**2 / np.subtract(n_b, 1))
    df = np.where(se > 0, df, np.add(n_a, n_b) - 2.0)
    return se, (df if np.ndim(df) else float(df))


def compare_unpaired(
    loss_a: ArrayLike,
    loss_b: ArrayLike,
    *,
    alpha: float = 0.05,
    margin: float = 0.0,
    alternative: Alternative = "greater",
    n_boot: int = 2000,
    ci_method: CIMethod = "bca",
    confidence_level: float | None = None,
    random_state: int | np.random.Generator | None = None,
) -> ComparisonResult:
    """Welch's unequal-variance t-test of mean loss, champion (A) vs challenger (B).

    Tests ``H0: mean_a - mean_b <= margin`` against ``H1: mean_a - mean_b > margin``
    (``alternative="greater"``): the challenger's mean loss is lower than the
    champion's by more than ``margin`` loss units. Welch's test is used because the
    two models' losses rarely share a variance, and it stays valid for skewed losses
    at the sample sizes an A/B test needs (the difference of means is close to
    normal). With ``margin=0`` it equals
    ``scipy.stats.ttest_ind(loss_a, loss_b, equal_var=False, alternative=...)``.

    Parameters
    ----------
    loss_a, loss_b : array_like, shape (n_a,), (n_b,)
        Per-row losses of the champion on arm A and the challenger on arm B.
    alpha : float, default 0.05
        Significance level.
    margin : float, default 0.0
        Required improvement in loss units (null value of ``mean_a - mean_b``).
    alternative : {"greater", "less", "two-sided"}, default "greater"
        See :class:`ComparisonResult`.
    n_boot : int, default 2000
        Bootstrap resamples for the interval of ``diff``; 0 skips the bootstrap.
    ci_method : {"bca", "percentile"}, default "bca"
        BCa corrects the percentile interval for the skew of loss distributions.
    confidence_level : float, optional
        Defaults to ``1 - 2*alpha`` (one-sided) or ``1 - alpha`` (two-sided).
    random_state : int, numpy.random.Generator or None
        Seed of the bootstrap; pass one for reproducible intervals.

    Returns
    -------
    ComparisonResult

    Raises
    ------
    ValueError
        If an input is empty, not 1-D, has fewer than 2 rows or a non-finite value,
        or an option is out of range.

    Notes
    -----
    With right-skewed losses (absolute errors) and *unequal* arms the one-sided
    t-test is not exact: it is anti-conservative when the champion's arm is the
    larger one (the challenger's small-sample mean is skewed) and conservative in
    the opposite case (8.6% instead of 5% at 1800/200 on diamonds-model errors), so
    :func:`~dethrone.abtest.decision.decide` also requires the permutation test
    :func:`~dethrone.abtest.permutation.permutation_welch`, which is exact there.
    """
    a, b = as_losses(loss_a, "loss_a"), as_losses(loss_b, "loss_b")
    _check_options(alpha, margin, alternative, n_boot, ci_method)
    level = _level(alpha, alternative, confidence_level)
    mean_a, mean_b = float(a.mean()), float(b.mean())
    se, df = welch_se_df(a.var(ddof=1), a.size, b.var(ddof=1), b.size)
    diff = mean_a - mean_b
    t = (diff - margin) / float(se) if se > 0 else math.nan
    t, p = t_pvalue(t, df, diff - margin, alternative)
    ci_low = ci_high = None
    rng, seed = make_rng(random_state)
    if n_boot:
        boot = boot_means(a, n_boot, rng) - boot_means(b, n_boot, rng)
        jack = np.concatenate([jackknife_terms(a), -jackknife_terms(b)])
        ci_low, ci_high = interval(boot, diff, level, ci_method, jack)
    return ComparisonResult(
        method="welch",
        statistic=t,
        pvalue=p,
        df=float(df),
        alternative=alternative,
        mean_a=mean_a,
        mean_b=mean_b,
        diff=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=level,
        ci_method=ci_method,
        relative_improvement=diff / mean_a if mean_a != 0 else math.nan,
        alpha=float(alpha),
        margin=float(margin),
        n_a=int(a.size),
        n_b=int(b.size),
        n_boot=int(n_boot),
        random_state=seed,
    )


def compare_paired(
    loss_champion: ArrayLike,
    loss_challenger: ArrayLike,
    *,
    alpha: float = 0.05,
    margin: float = 0.0,
    alternative: Alternative = "greater",
    n_boot: int = 2000,
    ci_method: CIMethod = "bca",
    confidence_level: float | None = None,
    random_state: int | np.random.Generator | None = None,
) -> ComparisonResult:
    """Paired t-test of per-row loss differences on rows both models scored.

    Row ``i`` of both arrays must be the same held-out row. The test is on
    ``d_i = loss_champion_i - loss_challenger_i``: ``H1: mean(d) > margin`` for
    ``alternative="greater"``. Pairing removes the row-to-row variation the two
    models share (hard rows are hard for both), so it is far more powerful than
    the unpaired test when it is available. With ``margin=0`` it equals
    ``scipy.stats.ttest_rel(loss_champion, loss_challenger, alternative=...)``.

    Parameters
    ----------
    loss_champion, loss_challenger : array_like, shape (n,)
        Per-row losses of both models on the same rows, in the same order.
    alpha, margin, alternative, n_boot, ci_method, confidence_level, random_state
        As in :func:`compare_unpaired`; the bootstrap resamples rows (pairs).

    Returns
    -------
    ComparisonResult
        ``n_a == n_b == n``.

    Raises
    ------
    ValueError
        As :func:`compare_unpaired`, and if the arrays differ in length.
    """
    a = as_losses(loss_champion, "loss_champion")
    b = as_losses(loss_challenger, "loss_challenger")
    if a.size != b.size:
        raise ValueError(
            f"paired losses must have the same length, got {a.size} "
            f"(champion) and {b.size} (challenger)"
        )
    _check_options(alpha, margin, alternative, n_boot, ci_method)
    level = _level(alpha, alternative, confidence_level)
    d = a - b
    diff = float(d.mean())
    se = math.sqrt(d.var(ddof=1) / d.size)
    df = float(d.size - 1)
    t, p = t_pvalue((diff - margin) / se if se > 0 else math.nan, df, diff - margin, alternative)
    ci_low = ci_high = None
    rng, seed = make_rng(random_state)
    if n_boot:
        ci_low, ci_high = interval(
            boot_means(d, n_boot, rng), diff, level, ci_method, jackknife_terms(d)
        )
    mean_a = float(a.mean())
    return ComparisonResult(
        method="paired-t",
        statistic=t,
        pvalue=p,
        df=df,
        alternative=alternative,
        mean_a=mean_a,
        mean_b=float(b.mean()),
        diff=diff,
        ci_low=ci_low,
        ci_high=ci_high,
        ci_level=level,
        ci_method=ci_method,
        relative_improvement=diff / mean_a if mean_a != 0 else math.nan,
        alpha=float(alpha),
        margin=float(margin),
        n_a=int(a.size),
        n_b=int(b.size),
        n_boot=int(n_boot),
        random_state=seed,
    )
