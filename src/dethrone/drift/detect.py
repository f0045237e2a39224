"""``detect_drift``: per-feature drift verdicts between a reference and current data.

Either side is a frame or a :class:`~dethrone.drift.profile.ReferenceProfile`; each
column's test is a pluggable :class:`~dethrone.drift.stattests.DriftTest`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from dethrone.drift import statistics as st
from dethrone.drift.profile import (
    FeatureProfile,
    ReferenceProfile,
    numeric_values,
    profile_categorical,
    profile_numeric,
)
from dethrone.drift.report import DriftReport, FeatureDrift
from dethrone.drift.stattests import (
    DEFAULT_TESTS,
    UNSEEN,
    DriftTest,
    TestResult,
    get_test,
)
from dethrone.settings import Settings

__all__ = ["detect_drift", "UNSEEN"]

TestChoice = str | DriftTest


def detect_drift(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame | ReferenceProfile,
    *,
    categorical: list[str] | None = None,
    features: list[str] | None = None,
    settings: Settings | None = None,
    tests: Mapping[str, TestChoice] | None = None,
    column_tests: Mapping[str, TestChoice] | None = None,
    **overrides: Any,
) -> DriftReport:
    """Check every feature of ``current`` for drift away from ``reference``.

    Each feature gets a drift test (:mod:`dethrone.drift.stattests`): by default
    ``"ks"`` for numeric features and ``"psi+chi2"`` for categorical ones.

    Numeric features (``"ks"``): two-sample KS test; drift when the corrected p-value is
    below ``ks_pvalue_threshold`` and the KS statistic is at least ``ks_min_effect``. PSI
    on ``psi_bins`` reference-quantile bins is reported too. Where a side is a KLL
    sketch (a profile above its cap of distinct values), the KS statistic comes from the
    sketches' CDFs with an error bound (the sum of both sides' normalised rank errors,
    stated per feature as ``statistic_error``), and drift needs the statistic minus the
    bound to reach ``ks_min_effect``, with the p-value taken at the statistic minus the
    bound. Categorical features (``"psi+chi2"``): PSI over
    the union of categories (categories unseen in the reference share one bucket;
    proportions floored at 1e-4); drift when PSI >= ``psi_threshold`` and the corrected
    p-value of a chi-square test is below ``chi2_pvalue_threshold``. The chi-square test
    runs on the pooled-sparse table (:func:`~dethrone.drift.statistics.pool_sparse`):
    every category whose expected count is >= 5 on both sides keeps its cell, all rarer
    ones -- categories the reference never saw included -- share one "other" cell. An
    empty reference cell for unseen categories would flag every sample of a long-tailed
    column, because a new sample always holds categories the first one missed (about
    the Good-Turing share: reference singletons / reference rows); comparing the share
    of rare-or-new categories instead flags only an excess of it, and a changed mix of
    the common categories. Missing values: a change of the missing rate by at least
    ``missing_rate_threshold`` whose corrected Fisher exact test p-value is below
    ``ks_pvalue_threshold`` is drift.

    One multiple-testing correction (``drift_correction``: Holm by default) covers every
    test that can flag the dataset: each feature's distribution test (those with a
    p-value), and the missing-rate test of each feature with missing values on either
    side.

    Parameters
    ----------
    reference : DataFrame or ReferenceProfile
        The champion's training data, or its saved profile.
    current : DataFrame or ReferenceProfile
        New data, or a profile of it (e.g. merged from per-hour or per-partition parts).
    categorical : list of str, optional
        Columns to treat as categorical (default: non-numeric dtypes).
    features : list of str, optional
        Columns to check (default: the reference's columns; a reference column absent
        from ``current`` is reported as drifted with status ``"missing_column"``).
    settings : Settings, optional
        Thresholds; default ``Settings()`` (pass ``Settings.from_env()`` at the edge).
    tests : mapping, optional
        The test per column kind, ``{"numeric": ..., "categorical": ...}``: a registered
        name (see :func:`~dethrone.drift.stattests.registered_tests`) or a
        :class:`~dethrone.drift.stattests.DriftTest`; unnamed kinds keep the default.
    column_tests : mapping, optional
        The test of single columns, by column name (wins over ``tests``).
    **overrides
        Per-call threshold overrides, e.g. ``psi_threshold=0.2``.

    Returns
    -------
    DriftReport

    Raises
    ------
    ValueError
        On an empty or non-DataFrame/profile input, a requested feature absent from
        either side, a column whose type differs between reference and current, an
        unknown test, or a test that does not apply to the column's kind.

    Examples
    --------
    Two samples of a 5,000-level column share few categories, yet are not drift:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"zip": rng.integers(0, 5000, 1000).astype(str)})
    >>> cur = pd.DataFrame({"zip": rng.integers(0, 5000, 1000).astype(str)})
    >>> detect_drift(ref, cur, settings=Settings()).drifted
    False
    >>> cur.loc[:399, "zip"] = "00000"  # 40% of rows become one zip code
    >>> detect_drift(ref, cur, settings=Settings()).drifted_features
    ['zip']

    Profiles of both sides give the same verdicts while they are exact:

    >>> p_ref, p_cur = ReferenceProfile.from_frame(ref), ReferenceProfile.from_frame(cur)
    >>> detect_drift(p_ref, p_cur, settings=Settings()).drifted_features
    ['zip']
    """
    settings = (settings or Settings()).replace(**overrides)
    _check_current(current)
    profile = _reference_profile(reference, categorical, features, settings)
    if isinstance(current, ReferenceProfile):
        _check_profile_kinds(current, categorical, "current")
    names, missing = _feature_names(profile, current, features)
    extra = [str(c) for c in current.columns if c not in profile.columns]

    chosen = {n: _test_for(profile.features[n], tests, column_tests) for n in names}
    computed = _compute_tests(
        profile, current, [n for n in names if n not in missing], chosen, settings
    )
    results = _corrected_verdicts(profile, computed, chosen, settings)
    for name in missing:
        results[name] = _missing_column(profile.features[name])
    results = {n: results[n] for n in names}

    n_drifted = sum(f.drifted for f in results.values())
    drifted = bool(results) and n_drifted / len(results) > settings.drift_share
    used = {n: chosen[n] for n in names}
    return DriftReport(
        drifted=drifted,
        features=results,
        n_reference=profile.n_rows,
        n_current=current.n_rows if isinstance(current, ReferenceProfile) else len(current),
        thresholds=_thresholds(settings, used, computed),
        missing_columns=tuple(missing),
        extra_columns=tuple(extra),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        methods={k: get_test((tests or {}).get(k, d)).name for k, d in DEFAULT_TESTS.items()},
    )


def _reference_profile(
    reference: Any, categorical: list[str] | None, features: list[str] | None, settings: Settings
) -> ReferenceProfile:
    """The reference side as a profile: a given profile (checked), or a frame profiled."""
    if isinstance(reference, ReferenceProfile):
        _check_profile_kinds(reference, categorical, "reference")
        return reference
    if isinstance(reference, pd.DataFrame):
        if features is not None:
            _require(features, reference.columns, "reference")
        # a frame is profiled exactly, whatever its size (the result of earlier versions)
        return ReferenceProfile.from_frame(
            reference,
            categorical=categorical,
            features=features,
            settings=settings,
            exact_max_unique=None,
        )
    raise ValueError(
        "reference must be a pandas DataFrame or a ReferenceProfile, "
        f"got {type(reference).__name__}"
    )


def _feature_names(
    profile: ReferenceProfile, current: Any, features: list[str] | None
) -> tuple[list[str], list[str]]:
    """The features to check, and those of them the current side lacks.

    By default every reference feature, a missing one reported as such; requested
    ``features`` must be on both sides.
    """
    current_is_profile = isinstance(current, ReferenceProfile)
    current_columns = current.features if current_is_profile else current.columns
    if features is None:
        names = list(profile.features)
        return names, [n for n in names if n not in current_columns]
    names = list(features)
    _require(names, profile.features, "reference profile")
    _require(names, current_columns, "current profile" if current_is_profile else "current")
    return names, []


def _compute_tests(
    profile: ReferenceProfile,
    current: Any,
    names: list[str],
    chosen: dict[str, DriftTest],
    settings: Settings,
) -> dict[str, tuple[FeatureProfile, TestResult]]:
    """Each feature's current summary and its drift test's (uncorrected) result."""
    computed: dict[str, tuple[FeatureProfile, TestResult]] = {}
    for name in names:
        fp = profile.features[name]
        cur = (
            current.features[name]
            if isinstance(current, ReferenceProfile)
            else _summarise(fp, current[name])
        )
        _check_kinds(fp, cur)
        computed[name] = (cur, chosen[name].compute(fp, cur, settings))
    return computed


def _corrected_verdicts(
    profile: ReferenceProfile,
    computed: dict[str, tuple[FeatureProfile, TestResult]],
    chosen: dict[str, DriftTest],
    settings: Settings,
) -> dict[str, FeatureDrift]:
    """Each computed feature's verdict after one correction over every test that can flag."""
    missing_p = {n: _missing_pvalue(profile.features[n], cur) for n, (cur, _) in computed.items()}
    # one family: the distribution tests, then the missing-rate tests
    family = [r.pvalue for _, r in computed.values()] + list(missing_p.values())
    adjusted = st.adjust_pvalues(family, settings.drift_correction)
    k = len(computed)
    results: dict[str, FeatureDrift] = {}
    for i, (name, (cur, result)) in enumerate(computed.items()):
        results[name] = _verdict(
            profile.features[name],
            cur,
            chosen[name],
            result,
            adjusted[i],
            missing_p[name],
            adjusted[k + i],
            settings,
        )
    return results


def _missing_column(fp: FeatureProfile) -> FeatureDrift:
    """The verdict of a reference feature the current data lacks: drifted (schema)."""
    return FeatureDrift(
        name=fp.name,
        kind=fp.kind,
        method="schema",
        drifted=True,
        statistic=None,
        pvalue=None,
        pvalue_adjusted=None,
        psi=None,
        threshold=0.0,
        n_reference=fp.n,
        n_current=0,
        status="missing_column",
        reasons=(f"column {fp.name!r} is in the reference but not in the current data",),
    )


def _check_current(current: Any) -> None:
    if isinstance(current, ReferenceProfile):
        if current.n_rows == 0:
            raise ValueError("current is empty (0 rows)")
        return
    if not isinstance(current, pd.DataFrame):
        raise ValueError(
            "current must be a pandas DataFrame or a ReferenceProfile, "
            f"got {type(current).__name__}"
        )
    if len(current) == 0:
        raise ValueError("current is empty (0 rows)")


def _test_for(
    fp: FeatureProfile,
    tests: Mapping[str, TestChoice] | None,
    column_tests: Mapping[str, TestChoice] | None,
) -> DriftTest:
    if tests:
        unknown = set(tests) - set(DEFAULT_TESTS)
        if unknown:
            raise ValueError(
                f"tests= is keyed by column kind (numeric, categorical), got {sorted(unknown)}; "
                "use column_tests= for single columns"
            )
    choice = (column_tests or {}).get(fp.name) or (tests or {}).get(fp.kind)
    choice = choice or DEFAULT_TESTS[fp.kind]
    test = get_test(choice)
    if fp.kind not in test.kinds:
        raise ValueError(
            f"drift test {test.name!r} applies to {', '.join(sorted(test.kinds))} columns, "
            f"but {fp.name!r} is {fp.kind}"
        )
    return test


def _summarise(fp: FeatureProfile, series: pd.Series) -> FeatureProfile:
    """The current column, summarised exactly like the reference column ``fp``."""
    if fp.kind == "numeric":
        return profile_numeric(fp.name, numeric_values(series, fp.name), 2)
    return profile_categorical(fp.name, series)


def _require(names, available, side: str) -> None:
    for name in names:
        if name not in available:
            raise ValueError(f"feature {name!r} is not a column of the {side}")


def _check_profile_kinds(
    profile: ReferenceProfile, categorical: list[str] | None, side: str
) -> None:
    for name in categorical or []:
        fp = profile.features.get(name)
        if fp is not None and fp.kind != "categorical":
            raise ValueError(f"column {name!r} was profiled as {fp.kind}, not categorical ({side})")


def _check_kinds(ref: FeatureProfile, cur: FeatureProfile) -> None:
    if ref.kind != cur.kind and cur.n_valid > 0:
        raise ValueError(
            f"column {ref.name!r} is {ref.kind} in the reference but {cur.kind} "
            "in the current profile"
        )


def _thresholds(
    s: Settings, tests: dict[str, DriftTest], computed: dict[str, tuple[Any, TestResult]]
) -> dict[str, Any]:
    per_test: dict[str, dict[str, Any]] = {}
    for name, test in tests.items():
        if name in computed:
            r = computed[name][1]
            per_test.setdefault(
                test.name,
                {"pvalue_threshold": r.pvalue_threshold, "effect_threshold": r.effect_threshold},
            )
    return {
        "ks_pvalue_threshold": s.ks_pvalue_threshold,
        "ks_min_effect": s.ks_min_effect,
        "psi_threshold": s.psi_threshold,
        "chi2_pvalue_threshold": s.chi2_pvalue_threshold,
        "psi_bins": s.psi_bins,
        "psi_floor": st.PSI_FLOOR,
        "missing_rate_threshold": s.missing_rate_threshold,
        "correction": s.drift_correction,
        "drift_share": s.drift_share,
        "tests": per_test,
    }


def _missing_pvalue(fp: FeatureProfile, cur: FeatureProfile) -> float | None:
    """Fisher p-value of the missing rates; None (no test) if neither side misses."""
    if fp.n_missing == 0 and cur.n_missing == 0:
        return None
    return st.fisher_pvalue(fp.n_missing, fp.n, cur.n_missing, cur.n)


def _verdict(
    fp: FeatureProfile,
    cur: FeatureProfile,
    test: DriftTest,
    result: TestResult,
    p_adj: float | None,
    miss_p: float | None,
    miss_adj: float | None,
    s: Settings,
) -> FeatureDrift:
    reasons: list[str] = []
    dist_drift = test.decide(result, p_adj)
    if result.status == "no_data":
        reasons.append("no non-missing values on one side: no distribution test")
    elif dist_drift:
        reasons.append(test.describe(result, p_adj))
    reasons.extend(result.notes)

    rate_ref = fp.n_missing / fp.n if fp.n else 0.0
    rate_cur = cur.n_missing / cur.n if cur.n else 0.0
    missing_drift = (
        miss_adj is not None
        and abs(rate_cur - rate_ref) >= s.missing_rate_threshold
        and miss_adj < s.ks_pvalue_threshold
    )
    if missing_drift:
        reasons.append(f"missing rate changed from {rate_ref:.1%} to {rate_cur:.1%}")
    return FeatureDrift(
        name=fp.name,
        kind=fp.kind,
        method=test.name,
        drifted=bool(dist_drift or missing_drift),
        statistic=result.statistic,
        pvalue=result.pvalue,
        pvalue_adjusted=p_adj,
        psi=result.psi,
        threshold=result.threshold,
        n_reference=fp.n,
        n_current=cur.n,
        status=result.status,
        missing_rate_reference=rate_ref,
        missing_rate_current=rate_cur,
        missing_drift=bool(missing_drift),
        missing_pvalue=1.0 if miss_p is None else miss_p,
        missing_pvalue_adjusted=miss_adj,
        unseen_categories=result.unseen,
        bins=result.bins,
        reference_share=result.reference_share,
        current_share=result.current_share,
        reasons=tuple(reasons),
        statistic_name=result.statistic_name,
        effect=result.effect,
        effect_threshold=result.effect_threshold,
        pvalue_threshold=result.pvalue_threshold,
        statistic_error=result.error_bound,
        exact=fp.exact and cur.exact,
    )
