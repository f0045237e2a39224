"""Drift tests as pluggable units, and the registry that names them.

A drift test (:class:`DriftTest`) has a name, the column kinds it applies to, and a
:meth:`~DriftTest.compute` that turns a reference column summary and a current one
(both :class:`~dethrone.drift.profile.FeatureProfile`, exact or sketched) into a frozen
:class:`TestResult`: its statistic, raw p-value (if it is a hypothesis test), effect
size, their thresholds, and the error bound of the statistic where a side is a sketch.
:func:`~dethrone.drift.detect_drift` puts every p-value into one multiple-testing
correction and then asks the test to :meth:`~DriftTest.decide` with the corrected
p-value. The default rule: drift when the corrected p-value is below the test's p-value
threshold (if it has one) and the effect minus its error bound is at least the test's
effect threshold (if it has one).

Registered by name: ``"ks"`` (numeric, the default), ``"psi+chi2"`` (categorical, the
default) and ``"wasserstein"`` (numeric: Wasserstein-1 distance over the reference's
standard deviation, no p-value). Register your own with :func:`register_test`, or pass
an instance to ``detect_drift(..., tests={"numeric": MyTest()})``. Only the defaults are
calibrated against the DESIGN's false-alarm and power rules.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from dethrone.drift import statistics as st
from dethrone.drift.profile import FeatureProfile
from dethrone.settings import Settings

NUMERIC, CATEGORICAL = "numeric", "categorical"
UNSEEN = "<unseen>"
#: the test each column kind gets unless told otherwise
DEFAULT_TESTS: Mapping[str, str] = {NUMERIC: "ks", CATEGORICAL: "psi+chi2"}


@dataclass(frozen=True)
class TestResult:
    """What a drift test computed for one feature, before the multiple-testing correction.

    ``statistic`` is the test's own statistic (``statistic_name`` says which); ``pvalue``
    its raw p-value, or None for a test that is not a hypothesis test (then it does not
    enter the correction); ``effect`` the effect size compared with ``effect_threshold``;
    ``error_bound`` a bound on |effect - its exact value| when a side is a sketch (0
    when both are exact). ``threshold`` is the headline threshold shown per feature.
    ``status``: "ok", "constant" (the reference has one value) or "no_data" (a side has
    no valid values: no test). ``notes`` are reasons reported whatever the verdict.
    """

    __test__ = False  # not a pytest class

    status: str = "ok"
    statistic: float | None = None
    statistic_name: str = ""
    pvalue: float | None = None
    pvalue_threshold: float | None = None
    effect: float | None = None
    effect_threshold: float | None = None
    error_bound: float = 0.0
    threshold: float = 0.0
    psi: float | None = None
    bins: tuple[str, ...] = ()
    reference_share: tuple[float, ...] = ()
    current_share: tuple[float, ...] = ()
    unseen: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


class DriftTest(ABC):
    """One drift test: subclass it, set ``name`` and ``kinds``, implement ``compute``.

    Override :meth:`decide` for a rule other than the default (p-value and effect
    thresholds, see the module docstring) and :meth:`describe` for the reason text.
    """

    __test__ = False  # not a pytest class

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def compute(
        self, reference: FeatureProfile, current: FeatureProfile, settings: Settings
    ) -> TestResult:
        """The test on one column: ``reference`` and ``current`` share its kind."""

    def decide(self, result: TestResult, pvalue_adjusted: float | None) -> bool:
        """Whether ``result`` (with its corrected p-value) is drift."""
        if result.status == "no_data":
            return False
        if result.pvalue_threshold is None and result.effect_threshold is None:
            raise ValueError(
                f"drift test {self.name!r} gave neither a p-value nor an effect threshold"
            )
        if result.pvalue_threshold is not None and not (
            pvalue_adjusted is not None and pvalue_adjusted < result.pvalue_threshold
        ):
            return False
        if result.effect_threshold is not None and not (
            result.effect is not None
            and result.effect - result.error_bound >= result.effect_threshold
        ):
            return False
        return True

    def describe(self, result: TestResult, pvalue_adjusted: float | None) -> str:
        """The reason given when :meth:`decide` found drift."""
        parts = [f"{self.name}: {result.statistic_name or 'statistic'}={_f(result.statistic)}"]
        if result.effect_threshold is not None:
            bound = f" - {result.error_bound:.3g} (sketch)" if result.error_bound else ""
            parts.append(f"effect {_f(result.effect)}{bound} >= {result.effect_threshold}")
        if result.pvalue_threshold is not None:
            parts.append(f"corrected p={pvalue_adjusted:.3g} < {result.pvalue_threshold}")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, kinds={sorted(self.kinds)})"


def _f(value: float | None) -> str:
    return "None" if value is None else f"{value:.3f}"


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


# --- helpers for test authors ----------------------------------------------------------


def raw_values(f: FeatureProfile) -> np.ndarray:
    """The valid values of an exact numeric summary, sorted (ValueError for a sketch)."""
    if not f.exact:
        raise ValueError(f"column {f.name!r} is a sketch: its raw values are not kept")
    return np.repeat(f.unique, f.value_counts)


def aligned_counts(
    reference: FeatureProfile, current: FeatureProfile
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """Categorical counts on the reference's categories: ``(labels, ref, cur, unseen)``,
    ``unseen`` holding the current categories the reference never saw, with counts."""
    known = {label: i for i, label in enumerate(reference.categories)}
    cur = np.zeros(len(reference.categories), dtype=np.int64)
    unseen: dict[str, int] = {}
    for label, c in zip(current.categories, current.counts.tolist(), strict=True):
        if label in known:
            cur[known[label]] += c
        elif c:
            unseen[label] = c
    return list(reference.categories), reference.counts, cur, unseen


def ks_between(reference: FeatureProfile, current: FeatureProfile) -> float:
    """sup |F_ref - F_cur| of two numeric summaries (exact, or from sketches' CDFs).

    Both CDFs are step functions that jump only at their own values, so the supremum
    is reached at a value of one side; equal to ``scipy.stats.ks_2samp(...).statistic``
    for exact summaries up to float rounding.
    """
    n1, n2 = reference.n_valid, current.n_valid
    f_ref = reference.cum / n1
    # at each reference value, and just before the next one (all current values after
    # the last); left of the smallest reference value F_ref = 0
    le = current.cdf_at(reference.unique)
    lt_next = np.empty_like(le)
    lt_next[:-1] = current.cdf_at(reference.unique[1:], strict=True)
    lt_next[-1] = n2
    d = max(
        float(current.cdf_at(reference.unique[:1], strict=True)[0]) / n2,
        float(np.max(np.abs(f_ref - le / n2))),
        float(np.max(np.abs(f_ref - lt_next / n2))),
    )
    return min(d, 1.0)


def wasserstein_between(reference: FeatureProfile, current: FeatureProfile) -> float:
    """Wasserstein-1 distance: the integral of |F_ref - F_cur| (exact summaries: equal to
    ``scipy.stats.wasserstein_distance`` up to float rounding)."""
    grid = np.union1d(reference.unique, current.unique)
    f_ref = reference.cdf_at(grid[:-1]) / reference.n_valid
    gap = np.abs(f_ref - current.cdf_at(grid[:-1]) / current.n_valid)
    return float(np.sum(gap * np.diff(grid)))


def weighted_std(f: FeatureProfile) -> float:
    """Population standard deviation of a numeric summary's values."""
    w = f.value_counts.astype(np.float64)
    mean = float(np.sum(w * f.unique) / f.n_valid)
    return math.sqrt(float(np.sum(w * (f.unique - mean) ** 2) / f.n_valid))


# --- built-in tests ---------------------------------------------------------------------


class KSTest(DriftTest):
    """Two-sample Kolmogorov-Smirnov test on numeric columns; PSI reported too.

    Drift when the corrected p-value is below ``ks_pvalue_threshold`` and the KS
    statistic D is at least ``ks_min_effect``. Where a side is a KLL sketch, D is
    computed from the sketch's CDF and is within ``error_bound`` = the sum of both
    sides' normalised rank errors of the exact D; the verdict then needs
    D - error_bound >= ``ks_min_effect`` and the p-value is computed at D - error_bound
    (asymptotic distribution), both conservative.
    """

    name = "ks"
    kinds = frozenset({NUMERIC})

    def compute(
        self, reference: FeatureProfile, current: FeatureProfile, settings: Settings
    ) -> TestResult:
        base: dict[str, Any] = {  # TestResult's fields shared by every return
            "statistic_name": "D",
            "pvalue_threshold": settings.ks_pvalue_threshold,
            "effect_threshold": settings.ks_min_effect,
            "threshold": settings.ks_pvalue_threshold,
            "bins": tuple(reference.bin_labels()),
        }
        if reference.n_valid == 0 or current.n_valid == 0:
            return TestResult(status="no_data", **base)
        d = ks_between(reference, current)
        bound = reference.rank_error + current.rank_error
        n1, n2 = reference.n_valid, current.n_valid
        if reference.exact and current.exact:
            small = n1 * n2 <= st.EXACT_KS_MAX_PRODUCT
            p = st.ks_pvalue(
                d,
                n1,
                n2,
                ref_values=raw_values(reference) if small else None,
                cur_values=raw_values(current) if small else None,
            )
        else:
            p = st.ks_pvalue(max(d - bound, 0.0), n1, n2)
        ref_bins = reference.bin_counts()
        if reference.unique.shape[0] == 1:  # constant reference: below, at and above it
            value = reference.unique[:1]
            lt = int(current.cdf_at(value, strict=True)[0])
            le = int(current.cdf_at(value)[0])
            cur_bins = np.array([lt, le - lt, n2 - le], dtype=np.int64)
        else:
            edges = reference.unique[reference.edge_index]
            cur_bins = np.diff(np.append(current.cdf_at(edges), n2), prepend=0)
        ref_share, cur_share = _shares(ref_bins), _shares(cur_bins)
        return TestResult(
            status="constant" if reference.unique.shape[0] == 1 else "ok",
            statistic=d,
            pvalue=p,
            effect=d,
            error_bound=bound,
            psi=st.psi(ref_share, cur_share),
            reference_share=tuple(float(x) for x in ref_share),
            current_share=tuple(float(x) for x in cur_share),
            **base,
        )

    def describe(self, result: TestResult, pvalue_adjusted: float | None) -> str:
        bound = f" (sketch: ± {result.error_bound:.3g})" if result.error_bound else ""
        return (
            f"KS D={result.statistic:.3f}{bound} >= {result.effect_threshold} with corrected "
            f"p={pvalue_adjusted:.3g} < {result.pvalue_threshold}"
        )


class PsiChi2Test(DriftTest):
    """PSI over the union of categories, confirmed by a chi-square test.

    Categories unseen in the reference share one PSI bucket; proportions are floored at
    ``PSI_FLOOR``. Drift when PSI >= ``psi_threshold`` and the corrected p-value is
    below ``chi2_pvalue_threshold``. The chi-square test runs on the pooled-sparse table
    (:func:`~dethrone.drift.statistics.pool_sparse`); where an "other" cell was pooled,
    the p-value is min(1, 2 min(p_chi2, p_tail)) with p_tail the one-sided Fisher test
    of a larger "other" share.
    """

    name = "psi+chi2"
    kinds = frozenset({CATEGORICAL})

    def compute(
        self, reference: FeatureProfile, current: FeatureProfile, settings: Settings
    ) -> TestResult:
        labels, ref, cur, unseen = aligned_counts(reference, current)
        n_unseen = sum(unseen.values())
        base: dict[str, Any] = {  # TestResult's fields shared by every return
            "statistic_name": "chi2",
            "pvalue_threshold": settings.chi2_pvalue_threshold,
            "effect_threshold": settings.psi_threshold,
            "threshold": settings.psi_threshold,
            "unseen": tuple(sorted(unseen, key=unseen.__getitem__, reverse=True)),
        }
        notes: tuple[str, ...] = ()
        if reference.n_valid == 0 or cur.sum() + n_unseen == 0:
            if unseen:
                notes = (
                    "categories unseen in the reference (which has no values): "
                    + ", ".join(base["unseen"][:10]),
                )
            return TestResult(status="no_data", bins=tuple(labels), notes=notes, **base)
        # each unseen category is a column of its own (reference count 0), and
        # pool_sparse merges the sparse ones with the reference's rare categories
        new = np.fromiter(unseen.values(), dtype=np.int64, count=len(unseen))
        r, c, tail = st.pool_sparse(np.append(ref, np.zeros_like(new)), np.append(cur, new))
        statistic, pvalue, _ = st.chi2_homogeneity(r, c)
        if tail and r.shape[0] > 1:
            # a flood of rare-or-new categories is one number; the chi-square spreads it
            # over all cells, so it also gets a one-sided test (Bonferroni over the two)
            p_tail = st.fisher_pvalue(
                int(r[-1]), int(r.sum()), int(c[-1]), int(c.sum()), alternative="greater"
            )
            pvalue = min(1.0, 2 * min(pvalue, p_tail))
        if unseen:
            share = n_unseen / (cur.sum() + n_unseen)
            expected = st.good_turing_unseen(ref)
            notes = (
                f"categories unseen in the reference ({share:.1%} of rows; Good-Turing "
                f"expects {expected:.1%}): " + ", ".join(base["unseen"][:10]),
            )
            ref = np.append(ref, 0)
            cur = np.append(cur, n_unseen)
            labels.append(UNSEEN)
        ref_share, cur_share = _shares(ref), _shares(cur)
        psi = st.psi(ref_share, cur_share)
        return TestResult(
            status="constant" if int((ref > 0).sum()) == 1 else "ok",
            statistic=statistic,
            pvalue=pvalue,
            effect=psi,
            psi=psi,
            bins=tuple(labels),
            reference_share=tuple(float(x) for x in ref_share),
            current_share=tuple(float(x) for x in cur_share),
            notes=notes,
            **base,
        )

    def describe(self, result: TestResult, pvalue_adjusted: float | None) -> str:
        return (
            f"PSI={result.psi:.3f} >= {result.effect_threshold}, confirmed by chi-square "
            f"corrected p={pvalue_adjusted:.3g}"
        )


class WassersteinTest(DriftTest):
    """Wasserstein-1 distance over the reference's standard deviation (numeric).

    A distance, not a hypothesis test: no p-value, so it does not enter the
    multiple-testing correction; drift when the normalised distance minus its error
    bound is at least ``threshold`` (0.1 by default, as Evidently's ``wasserstein``).
    A constant reference (standard deviation 0) is normalised by 1. Where a side is a
    sketch, the error bound is (sum of the rank errors) * (range of both sides) / std,
    because |F_sketch - F| <= rank error at every point.
    """

    name = "wasserstein"
    kinds = frozenset({NUMERIC})

    def __init__(self, threshold: float = 0.1) -> None:
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive finite number, got {threshold}")
        self.threshold = threshold

    def compute(
        self, reference: FeatureProfile, current: FeatureProfile, settings: Settings
    ) -> TestResult:
        base: dict[str, Any] = {  # TestResult's fields shared by every return
            "statistic_name": "W1/std",
            "effect_threshold": self.threshold,
            "threshold": self.threshold,
            "bins": tuple(reference.bin_labels()),
        }
        if reference.n_valid == 0 or current.n_valid == 0:
            return TestResult(status="no_data", **base)
        std = weighted_std(reference)
        scale = std if std > 0 else 1.0
        w = wasserstein_between(reference, current) / scale
        bound = 0.0
        if not (reference.exact and current.exact):
            lo = min(reference.unique[0], current.unique[0])
            hi = max(reference.unique[-1], current.unique[-1])
            bound = (reference.rank_error + current.rank_error) * float(hi - lo) / scale
        return TestResult(
            status="constant" if reference.unique.shape[0] == 1 else "ok",
            statistic=w,
            effect=w,
            error_bound=bound,
            **base,
        )


_REGISTRY: dict[str, DriftTest] = {}


def register_test(test: DriftTest, *, replace: bool = False) -> DriftTest:
    """Make ``test`` available by its name (e.g. ``tests={"numeric": "my-test"}``).

    Raises
    ------
    ValueError
        If ``test`` is not a :class:`DriftTest`, has no name or kinds outside
        numeric/categorical, or its name is taken (unless ``replace``).
    """
    if not isinstance(test, DriftTest):
        raise ValueError(f"a drift test must be a DriftTest, got {type(test).__name__}")
    if not test.name:
        raise ValueError(f"{type(test).__name__} has no name")
    if not test.kinds or not set(test.kinds) <= {NUMERIC, CATEGORICAL}:
        raise ValueError(f"drift test {test.name!r}: kinds must be numeric and/or categorical")
    if test.name in _REGISTRY and not replace:
        raise ValueError(f"a drift test named {test.name!r} is already registered")
    _REGISTRY[test.name] = test
    return test


def get_test(test: str | DriftTest) -> DriftTest:
    """The registered test of that name (or ``test`` itself if it is a DriftTest)."""
    if isinstance(test, DriftTest):
        return test
    try:
        return _REGISTRY[test]
    except KeyError:
        raise ValueError(
            f"no drift test named {test!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered_tests() -> dict[str, DriftTest]:
    """Every registered test by name (a copy)."""
    return dict(_REGISTRY)


def unregister_test(name: str) -> None:
    """Remove a test registered by name (built-ins included; re-register to restore)."""
    _REGISTRY.pop(name, None)


for _builtin in (KSTest(), PsiChi2Test(), WassersteinTest()):
    register_test(_builtin)
