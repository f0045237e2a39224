"""Guardrail metrics: secondary per-row metrics the challenger must not worsen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from numpy.typing import ArrayLike

from dethrone.abtest.compare import as_losses, t_pvalue, welch_se_df
from dethrone.abtest.serialize import ResultMixin

__all__ = ["GuardrailResult", "guardrail_test", "relative_change"]


@dataclass(frozen=True, kw_only=True)
class GuardrailResult(ResultMixin):
    """Harm test of one larger-is-worse metric: :func:`guardrail_test` (Welch, valid
    once) or the always-valid test of
    :func:`~dethrone.abtest.sequential.decide_sequential`, in one shape.

    Attributes
    ----------
    name : str
        Name of the metric.
    method : {"welch", "confidence-sequence"}
        The harm test: one-sided Welch, or the always-valid interval of the worsening.
    mean_a, mean_b : float
        Mean of the metric (per row, or per unit) for the champion (A) and the
        challenger (B).
    harm : float
        ``mean_b - mean_a``; positive means the challenger is worse.
    relative_change : float
        ``(mean_b - mean_a) / |mean_a|``.
    tolerated : float
        ``margin * |mean_a|``: the worsening tolerated, in metric units.
    margin : float
        Relative worsening tolerated (0.05 = 5%).
    alpha : float
        Level of the harm test.
    pvalue : float
        p-value of ``H0: harm = tolerated`` (always-valid for the confidence sequence).
    failed : bool
        Evidence of worsening beyond the margin: ``pvalue < alpha`` (Welch) or
        ``ci_low > tolerated`` (confidence sequence).
    n_a, n_b : int
        Observations per arm.
    statistic, df : float or None
        Welch t statistic and degrees of freedom (None for the confidence sequence).
    ci_low, ci_high : float or None
        Always-valid interval of ``harm`` at level ``1 - alpha`` (None for Welch).
    """

    name: str
    method: Literal["welch", "confidence-sequence"] = "welch"
    mean_a: float
    mean_b: float
    harm: float
    relative_change: float
    tolerated: float
    margin: float
    alpha: float
    pvalue: float
    failed: bool
    n_a: int
    n_b: int
    statistic: float | None = None
    df: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    def reason(self) -> str:
        """One readable sentence on the guardrail's verdict."""
        if self.method == "confidence-sequence":
            return self._interval_reason()
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

    def _interval_reason(self) -> str:
        stats = (
            f"mean {self.mean_a:.4g} -> {self.mean_b:.4g}, always-valid interval of "
            f"the worsening [{self.ci_low:.4g}, {self.ci_high:.4g}] vs "
            f"{self.tolerated:.4g} tolerated"
        )
        if self.failed:
            return f"guardrail '{self.name}' failed: the challenger is worse: {stats}"
        return f"guardrail '{self.name}' passed (no harm shown so far): {stats}"


def relative_change(mean_a: float, mean_b: float) -> float:
    """``(mean_b - mean_a) / |mean_a|``, signed infinity (or 0) when ``mean_a`` is 0."""
    if mean_a != 0:
        return (mean_b - mean_a) / abs(mean_a)
    return 0.0 if mean_b == mean_a else math.copysign(math.inf, mean_b - mean_a)


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
    return GuardrailResult(
        name=str(name),
        method="welch",
        mean_a=mean_a,
        mean_b=mean_b,
        harm=mean_b - mean_a,
        relative_change=float(relative_change(mean_a, mean_b)),
        tolerated=margin * abs(mean_a),
        margin=float(margin),
        alpha=float(alpha),
        pvalue=p,
        failed=bool(p < alpha),
        n_a=int(a.size),
        n_b=int(b.size),
        statistic=t,
        df=float(df),
    )
