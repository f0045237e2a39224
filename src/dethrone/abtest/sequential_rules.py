"""The rules of a sequential look: gates, verdict, and what one observation is.

Used by :func:`~dethrone.abtest.sequential.decide_sequential`; the result type is
:class:`~dethrone.abtest.decision_result.ABDecision`, shared with the fixed-horizon test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dethrone.abtest.decision_result import Outcome

__all__ = ["design", "gates", "verdict"]


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
) -> tuple[Outcome, str]:
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
