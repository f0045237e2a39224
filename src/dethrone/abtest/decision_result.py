"""The result of an A/B decision, fixed-horizon (:func:`~dethrone.abtest.decide`) or
sequential (:func:`~dethrone.abtest.decide_sequential`).

One type for both, so that callers (the pipeline, the experiment looks, MLflow, the CLI)
read the outcome, the estimate and its interval the same way whichever test decided.
The fields only one kind fills are None in the other, so both serialise the same keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from dethrone.abtest.compare import ComparisonResult
from dethrone.abtest.guardrails import GuardrailResult
from dethrone.abtest.permutation import PermutationResult
from dethrone.abtest.serialize import ResultMixin
from dethrone.abtest.srm import SRMResult

__all__ = ["ABDecision", "Kind", "Outcome"]

Outcome = Literal["promote", "keep", "continue", "inconclusive"]
Kind = Literal["fixed-horizon", "sequential"]


@dataclass(frozen=True, kw_only=True)
class ABDecision(ResultMixin):
    """Outcome of :func:`~dethrone.abtest.decide` or
    :func:`~dethrone.abtest.decide_sequential`, with every statistic it used.

    Attributes
    ----------
    outcome : {"promote", "keep", "continue", "inconclusive"}
        ``promote``: the challenger replaces the champion. ``keep``: it does not (not
        shown better, worse, a guardrail failed, or the sequential unit budget ran
        out). ``continue`` (sequential only): no decision yet, collect more data.
        ``inconclusive``: the experiment cannot be trusted (sample ratio mismatch) or
        is too small; fix it or wait.
    reasons : tuple of str
        Readable sentences, gates first, that justify ``outcome``.
    kind : {"fixed-horizon", "sequential"}
        The decision rule: one test at a planned sample size, or an always-valid test
        that may be looked at any number of times.
    method : {"unpaired", "paired", "unpaired+paired"}
        Arms compared as independent samples, as paired (shadow) differences, or
        (fixed-horizon with held-out rows) both, each required to agree.
    test : str
        The test of the improvement: ``"welch+permutation"`` (fixed-horizon),
        ``"betting"`` or ``"gaussian"`` (the sequential confidence sequence).
    estimate : float
        Improvement ``mean_a - mean_b`` (champion minus challenger mean loss).
    ci_low, ci_high : float
        Interval of the improvement: the Welch test's bootstrap CI (level
        ``unpaired.ci_level``; NaN, None in ``to_dict``, when ``n_boot`` is 0), or the
        always-valid interval at level ``1 - alpha`` (NaN below 2 observations).
    pvalue : float
        One-sided p-value of ``H0: improvement <= margin`` (Welch), or always-valid
        p-value of ``H0: improvement = margin``.
    mean_a, mean_b, relative_improvement : float
        Mean loss per observation and ``estimate / mean_a``.
    rows_a, rows_b, units_a, units_b : int
        Rows and units per arm (units equal rows without unit ids).
    pairs : int
        Paired observations analysed (0 without a paired sample).
    per_unit : bool
        Observations are unit means rather than rows.
    srm : SRMResult or None
        Sample-ratio-mismatch test of the arm sizes (chi-square, or the always-valid
        Bayes factor); None in sequential shadow mode, which has no split.
    guardrails : dict of str to GuardrailResult
        Harm test per guardrail metric.
    alpha, margin, guardrail_margin, srm_threshold, expected_share_a : float
        Thresholds used (after applying settings) and the configured share of arm A.
    min_units_per_arm : int
        Gate: fewer units (rows) per arm make the decision inconclusive. Also
        ``min_rows_per_arm``, the fixed-horizon name.
    unpaired, paired : ComparisonResult or None
        Fixed-horizon: one-sided Welch test on the arms (None with fewer than 2 rows in
        an arm) and paired t-test on shared rows (when ``paired`` was given).
    permutation : PermutationResult or None
        Fixed-horizon: studentized permutation test, run only when the Welch test is
        significant (otherwise it cannot change the outcome).
    n_boot, n_permutations : int or None
        Fixed-horizon: bootstrap resamples and permutation re-splits.
    random_state : int or None
        Fixed-horizon: seed of the bootstrap and the permutation test (None when a
        Generator was given).
    rho2, tuning_n : float, int or None
        Sequential: mixing parameter of the Gaussian mixture and the observations at
        which it is tightest.
    max_units_per_arm : int or None
        Sequential: units in the smaller arm after which an undecided experiment ends in
        ``keep`` (0: no cap).
    loss_cap, cap_quantile : float or None
        Sequential: the cap of the losses in the betting CS (the last one used; NaN for
        the Gaussian test) and the quantile that set it.
    """

    outcome: Outcome
    reasons: tuple[str, ...]
    kind: Kind
    method: str
    test: str
    estimate: float
    ci_low: float
    ci_high: float
    pvalue: float
    mean_a: float
    mean_b: float
    relative_improvement: float
    rows_a: int
    rows_b: int
    units_a: int
    units_b: int
    pairs: int = 0
    per_unit: bool = False
    srm: SRMResult | None
    guardrails: dict[str, GuardrailResult] = field(default_factory=dict)
    alpha: float = 0.05
    margin: float = 0.0
    guardrail_margin: float = 0.05
    srm_threshold: float = 0.001
    expected_share_a: float = 0.5
    min_units_per_arm: int = 200
    # fixed-horizon only
    unpaired: ComparisonResult | None = None
    paired: ComparisonResult | None = None
    permutation: PermutationResult | None = None
    n_boot: int | None = None
    n_permutations: int | None = None
    random_state: int | None = None
    # sequential only
    rho2: float | None = None
    tuning_n: int | None = None
    max_units_per_arm: int | None = None
    loss_cap: float | None = None
    cap_quantile: float | None = None

    @property
    def promote(self) -> bool:
        """True when the challenger should replace the champion."""
        return self.outcome == "promote"

    @property
    def stopped(self) -> bool:
        """True when the experiment is decided (promote or keep)."""
        return self.outcome in ("promote", "keep")

    @property
    def min_rows_per_arm(self) -> int:
        """``min_units_per_arm``, by its fixed-horizon name."""
        return self.min_units_per_arm

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict of the outcome, reasons, thresholds and statistics
        (non-finite floats become None); the same keys for both kinds."""
        # min_rows_per_arm: the key fixed-horizon records were written with.
        return {**super().to_dict(), "min_rows_per_arm": self.min_units_per_arm}


def relative_improvement(estimate: float, mean_a: float) -> float:
    """``estimate / mean_a``; NaN when the champion's mean loss is 0."""
    return float(estimate) / mean_a if mean_a else math.nan
