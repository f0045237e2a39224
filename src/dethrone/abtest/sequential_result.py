"""Result types of :func:`~dethrone.abtest.sequential.decide_sequential`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from dethrone.abtest.compare import _finite_or_none
from dethrone.abtest.sequential_srm import SequentialSRMResult

__all__ = ["SequentialDecision", "SequentialGuardrailResult"]

SequentialOutcome = Literal["promote", "keep", "continue", "inconclusive"]


@dataclass(frozen=True)
class SequentialGuardrailResult:
    """Always-valid harm test of one larger-is-worse guardrail metric.

    Attributes
    ----------
    name : str
        Name of the metric.
    mean_a, mean_b : float
        Mean per analysed observation (unit or row) for the champion and the challenger.
    harm : float
        ``mean_b - mean_a``; positive means the challenger is worse.
    ci_low, ci_high : float
        Always-valid interval of ``harm`` at level ``1 - alpha``.
    tolerated : float
        ``margin * |mean_a|``: the worsening tolerated, in metric units.
    pvalue : float
        Always-valid p-value of ``H0: harm = tolerated``.
    failed : bool
        ``ci_low > tolerated``: the challenger is worse by more than the margin.
    n_a, n_b : int
        Observations per arm.
    """

    name: str
    mean_a: float
    mean_b: float
    harm: float
    ci_low: float
    ci_high: float
    tolerated: float
    pvalue: float
    failed: bool
    n_a: int
    n_b: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (non-finite floats become None)."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}

    def reason(self) -> str:
        """One readable sentence on the guardrail's verdict."""
        stats = (
            f"mean {self.mean_a:.4g} -> {self.mean_b:.4g}, always-valid interval of "
            f"the worsening [{self.ci_low:.4g}, {self.ci_high:.4g}] vs "
            f"{self.tolerated:.4g} tolerated"
        )
        if self.failed:
            return f"guardrail '{self.name}' failed: the challenger is worse: {stats}"
        return f"guardrail '{self.name}' passed (no harm shown so far): {stats}"


@dataclass(frozen=True)
class SequentialDecision:
    """Outcome of :func:`~dethrone.abtest.sequential.decide_sequential`.

    Attributes
    ----------
    outcome : {"promote", "keep", "continue", "inconclusive"}
        ``promote``: the challenger is better by more than ``margin``; ``keep``: the
        challenger cannot be better by more than ``margin``, harms a guardrail, or the
        unit budget ran out; ``continue``: no decision yet, collect more data;
        ``inconclusive``: sample ratio mismatch or too few units.
    reasons : tuple of str
        Readable sentences, gates first.
    method : {"unpaired", "paired"}
        Arms compared as independent samples, or paired (shadow) differences.
    per_unit : bool
        Observations are unit means (``units_a``/``units_b`` given) rather than rows.
    estimate : float
        Improvement ``mean_a - mean_b`` (champion minus challenger mean loss).
    ci_low, ci_high : float
        Always-valid confidence interval of the improvement at level ``1 - alpha``
        (NaN, None in ``to_dict``, with fewer than 2 observations).
    pvalue : float
        Always-valid p-value of ``H0: improvement = margin``.
    mean_a, mean_b, relative_improvement : float
        Mean loss per observation and ``estimate / mean_a``.
    units_a, units_b, rows_a, rows_b : int
        Units and rows per arm (units equal rows without unit ids).
    pairs : int
        Paired observations analysed (0 when unpaired).
    srm : SequentialSRMResult or None
        Anytime-valid SRM test of the unit counts (None in pure shadow mode).
    guardrails : dict of str to SequentialGuardrailResult
    alpha, margin, guardrail_margin, srm_threshold, expected_share_a, rho2 : float
    tuning_n, min_units_per_arm, max_units_per_arm : int
        Every threshold used (``max_units_per_arm`` 0 means no cap; it counts the
        smaller arm, the one that limits what can be learnt).
    test : {"betting", "gaussian"}
        The confidence sequence: the betting CS of capped losses (proven at any split
        and tail) or the asymptotic Gaussian mixture (the former default).
    loss_cap, cap_quantile : float
        The cap of the losses in the betting CS (the last one used when computed from
        earlier units; NaN for the Gaussian test) and the quantile that set it.
    """

    outcome: SequentialOutcome
    reasons: tuple[str, ...]
    method: str
    per_unit: bool
    estimate: float
    ci_low: float
    ci_high: float
    pvalue: float
    mean_a: float
    mean_b: float
    relative_improvement: float
    units_a: int
    units_b: int
    rows_a: int
    rows_b: int
    pairs: int
    srm: SequentialSRMResult | None
    guardrails: dict[str, SequentialGuardrailResult] = field(default_factory=dict)
    alpha: float = 0.05
    margin: float = 0.0
    guardrail_margin: float = 0.05
    srm_threshold: float = 0.001
    expected_share_a: float = 0.5
    rho2: float = 0.0
    tuning_n: int = 5000
    min_units_per_arm: int = 200
    max_units_per_arm: int = 0
    test: str = "betting"
    loss_cap: float = math.nan
    cap_quantile: float = 0.995

    @property
    def promote(self) -> bool:
        """True when the challenger should replace the champion."""
        return self.outcome == "promote"

    @property
    def stopped(self) -> bool:
        """True when the experiment is decided (promote or keep)."""
        return self.outcome in ("promote", "keep")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the outcome, reasons, thresholds and statistics."""
        out = {
            k: _finite_or_none(getattr(self, k))
            for k in self.__dataclass_fields__
            if k not in ("srm", "guardrails", "reasons")
        }
        out["reasons"] = list(self.reasons)
        out["srm"] = None if self.srm is None else self.srm.to_dict()
        out["guardrails"] = {k: g.to_dict() for k, g in self.guardrails.items()}
        return out


def verdict(
    est: float,
    low: float,
    high: float,
    p: float,
    *,
    margin: float,
    alpha: float,
    capped: bool,
    failed: list[str],
) -> tuple[SequentialOutcome, str]:
    """Outcome of a valid look (rules 3-6 of decide_sequential) and its reason."""
    ci = (
        f"always-valid {100 * (1 - alpha):g}% interval of the improvement "
        f"[{low:.4g}, {high:.4g}] (estimate {est:.4g}), always-valid p = {p:.3g} for an "
        f"improvement of {margin:g}"
    )
    if failed:
        return "keep", f"keep the champion: guardrail(s) {', '.join(failed)} failed; {ci}"
    if low > margin:
        return "promote", f"challenger is better by more than the margin {margin:g}: {ci}"
    if high < margin:
        worse = " (the challenger is worse)" if high < 0 else ""
        return "keep", (
            f"keep the champion: the interval excludes a gain larger than the "
            f"margin {margin:g}{worse}: {ci}"
        )
    if capped:
        return "keep", (
            f"keep the champion: max_units_per_arm reached without showing an improvement: {ci}"
        )
    return "continue", f"no decision yet, keep collecting data: {ci}"


def gates(srm: Any, n_obs: int, min_units: int, *, paired: bool, what: str) -> list[str]:
    """Reasons that make the look inconclusive: SRM, or too few observations."""
    out = [srm.reason()] if srm is not None and srm.mismatch else []
    if n_obs < min_units:
        out.append(
            f"{n_obs} paired observations, fewer than the minimum of {min_units}"
            if paired
            else f"an arm has {n_obs} {what}, fewer than the minimum of {min_units} per arm"
        )
    return out


def design(
    units_a: int,
    units_b: int,
    rows_a: int,
    rows_b: int,
    pair: tuple[np.ndarray, float, float, int] | None,
    per_unit: bool,
) -> str:
    """One sentence on what one observation is (row, unit or pair)."""
    if pair is not None:
        if per_unit:
            return f"paired (shadow) analysis of {pair[0].size} units ({pair[3]} rows)"
        return f"paired (shadow) analysis of {pair[3]} rows"
    if per_unit:
        return (
            f"per-unit analysis (a unit's mean loss is one observation): "
            f"{units_a}/{units_b} units from {rows_a}/{rows_b} rows (A/B)"
        )
    return f"per-row analysis of {rows_a}/{rows_b} rows (A/B)"
