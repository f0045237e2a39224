"""Result objects of a drift check; both serialise to JSON with ``to_dict()``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from dethrone import __version__


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class FeatureDrift:
    """Verdict for one feature.

    ``method`` is the name of the feature's drift test (:mod:`dethrone.drift.stattests`):
    by default ``"ks"`` (numeric: KS test, PSI reported too) or ``"psi+chi2"``
    (categorical: PSI over the union of categories, confirmed by a chi-square test on
    the table with sparse categories pooled); ``"schema"`` for a missing column.
    ``statistic`` (named by ``statistic_name``: ``"D"``, ``"chi2"``, ...) and ``pvalue``
    are the test's own; where categories were pooled into an "other" cell, the
    chi-square ``pvalue`` is min(1, 2 min(p_chi2, p_tail)) with p_tail the one-sided
    Fisher test of a larger "other" share (``pvalue`` is None where no test applies,
    e.g. a side with no values, or for a test that is not a hypothesis test);
    ``pvalue_adjusted`` is after the multiple-testing correction over all features'
    distribution and missing-rate tests. ``effect`` is the test's effect size (KS D,
    PSI, ...), compared with ``effect_threshold``; ``pvalue_threshold`` is the test's
    bar for the corrected p-value (None: the test has none). ``statistic_error`` bounds
    |statistic - exact statistic| where a side is a sketch (``exact`` False); the
    verdict then uses effect - statistic_error. ``threshold`` is the headline threshold
    of the test (the KS p-value threshold, or the PSI threshold for categorical
    features). ``missing_pvalue`` is Fisher's exact
    test of the missing rates and ``missing_pvalue_adjusted`` its p-value after the
    same correction (None when neither side has a missing value: no test).
    """

    name: str
    kind: str
    method: str
    drifted: bool
    statistic: float | None
    pvalue: float | None
    pvalue_adjusted: float | None
    psi: float | None
    threshold: float
    n_reference: int
    n_current: int
    status: str = "ok"
    missing_rate_reference: float = 0.0
    missing_rate_current: float = 0.0
    missing_drift: bool = False
    missing_pvalue: float | None = None
    missing_pvalue_adjusted: float | None = None
    unseen_categories: tuple[str, ...] = ()
    bins: tuple[str, ...] = ()
    reference_share: tuple[float, ...] = ()
    current_share: tuple[float, ...] = ()
    reasons: tuple[str, ...] = ()
    statistic_name: str = ""
    effect: float | None = None
    effect_threshold: float | None = None
    pvalue_threshold: float | None = None
    statistic_error: float = 0.0
    exact: bool = True

    def to_dict(self) -> dict[str, Any]:
        return _clean(asdict(self))


@dataclass(frozen=True)
class DriftReport:
    """Result of :func:`~dethrone.drift.detect_drift`.

    ``drifted`` is the dataset verdict: more than ``drift_share`` of the checked
    features drifted (default 0: any feature). ``missing_columns`` and
    ``extra_columns`` record a schema mismatch between reference and current.
    ``methods`` names the drift test of each column kind (a feature's own test, which
    ``column_tests=`` may set, is its ``method``).
    """

    drifted: bool
    features: dict[str, FeatureDrift]
    n_reference: int
    n_current: int
    thresholds: dict[str, Any] = field(default_factory=dict)
    missing_columns: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()
    created_at: str = ""
    methods: dict[str, str] = field(
        default_factory=lambda: {"numeric": "ks", "categorical": "psi+chi2"}
    )

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict with the verdict, thresholds, methods and sizes."""
        return _clean(
            {
                "drifted": self.drifted,
                "drifted_features": self.drifted_features,
                "share_drifted": self.share_drifted,
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "thresholds": self.thresholds,
                "methods": dict(self.methods),
                "random_state": None,  # the check is deterministic: no seed is used
                "missing_columns": list(self.missing_columns),
                "extra_columns": list(self.extra_columns),
                "created_at": self.created_at,
                "dethrone_version": __version__,
                "features": {k: v.to_dict() for k, v in self.features.items()},
            }
        )

    def summary_rows(self) -> list[dict[str, Any]]:
        """One plain dict per feature, for tables."""
        return [
            {
                "feature": f.name,
                "kind": f.kind,
                "method": f.method,
                "drifted": f.drifted,
                "statistic": f.statistic,
                "pvalue": f.pvalue_adjusted,
                "psi": f.psi,
                "effect": f.effect,
                "statistic_error": f.statistic_error,
                "missing_ref": f.missing_rate_reference,
                "missing_cur": f.missing_rate_current,
                "status": f.status,
            }
            for f in self.features.values()
        ]
