"""Guardrail metrics: secondary per-row metrics the challenger must not worsen."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from numpy.typing import ArrayLike

from dethrone.abtest.compare import _finite_or_none, as_losses, t_pvalue, welch_se_df

__all__ = ["GuardrailResult", "guardrail_test"]


@dataclass(frozen=True)
class GuardrailResult:
    """Result of :func:`guardrail_test`.

    Attributes
    ----------
    name : str
        Name of the metric.
    statistic, pvalue, df : float
        One-sided Welch test of ``H1: mean_b - mean_a > margin * |mean_a|``.
    mean_a, mean_b : float
        Mean of the metric for the champion (A) and the challenger (B).
    relative_change : float
        ``(mean_b - mean_a) / |mean_a|``; positive means the challenger is worse.
    margin : float
        Relative worsening tolerated (0.05 = 5%).
    alpha : float
        Significance level of the harm test.
    failed : bool
        ``pvalue < alpha``: significant evidence of worsening beyond the margin.
    n_a, n_b : int
        Rows per arm.
    """

    name: str
    statistic: float
    pvalue: float
    df: float
    mean_a: float
    mean_b: float
    relative_change: float
    margin: float
    alpha: float
    failed: bool
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (non-finite floats become None)."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}

    def reason(self) -> str:
        """One readable sentence on the guardrail's verdict."""
        change = (
            f"{100 * self.relative_change:+.1f}% (mean {self.mean_a:.4g} -> "
            f"{self.mean_b:.4g}), harm-test p = {self.pvalue:.3g}"
        )
        if self.failed:
            return (
                f"guardrail '{self.name}' failed: the challenger is worse by more than "
                f"the {100 * self.margin:g}% margin: {change} < alpha = {self.alpha:g}"
            )
        return (
            f"guardrail '{self.name}' passed: no significant worsening beyond "
            f"{100 * self.margin:g}%: {change}"
        )


def guardrail_test(
    values_a: ArrayLike,
    values_b: ArrayLike,
    *,
    name: str = "guardrail",
    margin: float = 0.05,
    alpha: float = 0.05,
) -> GuardrailResult:
    """One-sided harm test of a larger-is-worse metric, with a relative margin.

    The guardrail *fails* only with statistical evidence that the challenger is worse
    by more than ``margin`` (relative to the champion's mean): Welch's test of
    ``H0: mean_b - mean_a <= margin * |mean_a|`` is rejected at ``alpha``. So noise
    alone blocks a good challenger in at most ``alpha`` of experiments per guardrail,
    and a worsening within the margin is tolerated. The price of that choice: a
    guardrail measured on too few rows rarely fails; it is not a proof of
    non-inferiority. The margin is scaled by the observed champion mean (a plug-in,
    whose own noise is small next to the difference at A/B sample sizes).

    Parameters
    ----------
    values_a, values_b : array_like
        Per-row values of the metric for the champion's and the challenger's rows
        (larger is worse, e.g. squared error, latency, a fairness gap).
    name : str
        Name used in the result and its reason.
    margin : float, default 0.05
        Relative worsening tolerated, >= 0.
    alpha : float, default 0.05
        Significance level of the harm test.

    Returns
    -------
    GuardrailResult

    Raises
    ------
    ValueError
        If an input is empty, has fewer than 2 rows or non-finite values, or
        ``margin`` is negative.
    """
    a = as_losses(values_a, f"guardrail {name!r} values_a")
    b = as_losses(values_b, f"guardrail {name!r} values_b")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"guardrail margin must be a finite number >= 0, got {margin}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    mean_a, mean_b = float(a.mean()), float(b.mean())
    se, df = welch_se_df(a.var(ddof=1), a.size, b.var(ddof=1), b.size)
    effect = (mean_b - mean_a) - margin * abs(mean_a)
    t = effect / float(se) if se > 0 else math.nan
    t, p = t_pvalue(t, df, effect, "greater")
    rel = (
        (mean_b - mean_a) / abs(mean_a)
        if mean_a != 0
        else (0.0 if mean_b == mean_a else math.copysign(math.inf, mean_b - mean_a))
    )
    return GuardrailResult(
        name=str(name),
        statistic=t,
        pvalue=p,
        df=float(df),
        mean_a=mean_a,
        mean_b=mean_b,
        relative_change=float(rel),
        margin=float(margin),
        alpha=float(alpha),
        failed=bool(p < alpha),
        n_a=int(a.size),
        n_b=int(b.size),
    )
