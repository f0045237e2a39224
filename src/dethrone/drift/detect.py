"""``detect_drift``: per-feature drift verdicts against a reference frame or profile."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from dethrone.drift import statistics as st
from dethrone.drift.profile import FeatureProfile, ReferenceProfile, category_counts, numeric_values
from dethrone.drift.report import DriftReport, FeatureDrift
from dethrone.settings import Settings

UNSEEN = "<unseen>"


def detect_drift(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    categorical: list[str] | None = None,
    features: list[str] | None = None,
    settings: Settings | None = None,
    **overrides: Any,
) -> DriftReport:
    """Check every feature of ``current`` for drift away from ``reference``.

    Numeric features: two-sample KS test; drift when the corrected p-value is below
    ``ks_pvalue_threshold`` and the KS statistic is at least ``ks_min_effect``. PSI on
    ``psi_bins`` reference-quantile bins is reported too. Categorical features: PSI over
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
    test that can flag the dataset: each feature's distribution test, and the
    missing-rate test of each feature with missing values on either side.

    Parameters
    ----------
    reference : DataFrame or ReferenceProfile
        The champion's training data, or its saved profile.
    current : DataFrame
        New data.
    categorical : list of str, optional
        Columns to treat as categorical (default: non-numeric dtypes).
    features : list of str, optional
        Columns to check (default: the reference's columns; a reference column absent
        from ``current`` is reported as drifted with status ``"missing_column"``).
    settings : Settings, optional
        Thresholds; default ``Settings()`` (pass ``Settings.from_env()`` at the edge).
    **overrides
        Per-call threshold overrides, e.g. ``psi_threshold=0.2``.

    Returns
    -------
    DriftReport

    Raises
    ------
    ValueError
        On an empty or non-DataFrame input, a requested feature absent from either
        side, or a column whose type differs between reference and current.

    Examples
    --------
    Two samples of a 5,000-level column share few categories, yet are not drift:

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"zip": rng.integers(0, 5000, 1000).astype(str)})
    >>> cur = pd.DataFrame({"zip": rng.integers(0, 5000, 1000).astype(str)})
    >>> detect_drift(ref, cur, settings=Settings()).drifted
    False
    >>> cur.loc[:399, "zip"] = "00000"  # 40% of rows become one zip code
    >>> detect_drift(ref, cur, settings=Settings()).drifted_features
    ['zip']
    """
    settings = (settings or Settings()).replace(**overrides)
    if not isinstance(current, pd.DataFrame):
        raise ValueError(f"current must be a pandas DataFrame, got {type(current).__name__}")
    if len(current) == 0:
        raise ValueError("current is empty (0 rows)")
    if isinstance(reference, ReferenceProfile):
        profile = reference
        _check_profile_kinds(profile, categorical)
    elif isinstance(reference, pd.DataFrame):
        names = features
        if names is not None:
            _require(names, reference.columns, "reference")
        profile = ReferenceProfile.from_frame(
            reference, categorical=categorical, features=names, settings=settings
        )
    else:
        raise ValueError(
            "reference must be a pandas DataFrame or a ReferenceProfile, "
            f"got {type(reference).__name__}"
        )

    if features is None:
        names = list(profile.features)
        missing = [n for n in names if n not in current.columns]
    else:
        names = list(features)
        _require(names, profile.features, "reference profile")
        _require(names, current.columns, "current")
        missing = []
    extra = [str(c) for c in current.columns if c not in profile.columns]

    partial = {}
    for name in names:
        fp = profile.features[name]
        if name in missing:
            continue
        if fp.kind == "numeric":
            partial[name] = _numeric(fp, current[name], settings)
        else:
            partial[name] = _categorical(fp, current[name])

    for name, part in partial.items():
        part["missing_p"] = _missing_pvalue(profile.features[name], part)
    # one family: the distribution tests, then the missing-rate tests
    family = [p.get("pvalue") for p in partial.values()]
    family += [p["missing_p"] for p in partial.values()]
    adjusted = st.adjust_pvalues(family, settings.drift_correction)
    k = len(partial)
    results: dict[str, FeatureDrift] = {}
    for i, (name, part) in enumerate(partial.items()):
        results[name] = _verdict(
            profile.features[name], part, adjusted[i], adjusted[k + i], settings
        )
    for name in missing:
        fp = profile.features[name]
        results[name] = FeatureDrift(
            name=name,
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
            reasons=(f"column {name!r} is in the reference but not in the current data",),
        )
    results = {n: results[n] for n in names}

    n_drifted = sum(f.drifted for f in results.values())
    drifted = bool(results) and n_drifted / len(results) > settings.drift_share
    return DriftReport(
        drifted=drifted,
        features=results,
        n_reference=profile.n_rows,
        n_current=len(current),
        thresholds=_thresholds(settings),
        missing_columns=tuple(missing),
        extra_columns=tuple(extra),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _require(names, available, side: str) -> None:
    for name in names:
        if name not in available:
            raise ValueError(f"feature {name!r} is not a column of the {side}")


def _check_profile_kinds(profile: ReferenceProfile, categorical: list[str] | None) -> None:
    for name in categorical or []:
        fp = profile.features.get(name)
        if fp is not None and fp.kind != "categorical":
            raise ValueError(f"column {name!r} was profiled as {fp.kind}, not categorical")


def _thresholds(s: Settings) -> dict[str, Any]:
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
    }


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def _missing_pvalue(fp: FeatureProfile, part: dict[str, Any]) -> float | None:
    """Fisher p-value of the missing rates; None (no test) if neither side misses."""
    if fp.n_missing == 0 and part["n_missing"] == 0:
        return None
    return st.fisher_pvalue(fp.n_missing, fp.n, part["n_missing"], part["n"])


def _numeric(fp: FeatureProfile, series: pd.Series, settings: Settings) -> dict[str, Any]:
    values = numeric_values(series, fp.name)
    nan = np.isnan(values)
    n_missing = int(nan.sum())
    valid = values[~nan] if n_missing else values
    out: dict[str, Any] = {"n": len(values), "n_missing": n_missing, "bins": fp.bin_labels()}
    if fp.n_valid == 0 or valid.shape[0] == 0:
        out["status"] = "no_data"
        return out
    counts = st.count_against(fp.unique, valid)
    d = st.ks_statistic(fp.cum, counts)
    raw_ref = (
        np.repeat(fp.unique, np.diff(fp.cum, prepend=0))
        if fp.n_valid * counts.n <= st.EXACT_KS_MAX_PRODUCT
        else None
    )
    out["statistic"] = d
    out["pvalue"] = st.ks_pvalue(d, fp.n_valid, counts.n, ref_values=raw_ref, cur_values=valid)
    ref_bins = fp.bin_counts()
    if fp.unique.shape[0] == 1:  # constant reference: below, at and above its value
        lt, le = int(counts.lt[0]), int(counts.le[0])
        cur_bins = np.array([lt, le - lt, counts.n - le], dtype=np.int64)
    else:
        cur_bins = np.diff(np.append(counts.le[fp.edge_index], counts.n), prepend=0)
    out["ref_share"], out["cur_share"] = _shares(ref_bins), _shares(cur_bins)
    out["psi"] = st.psi(out["ref_share"], out["cur_share"])
    out["status"] = "constant" if fp.unique.shape[0] == 1 else "ok"
    return out


def _categorical(fp: FeatureProfile, series: pd.Series) -> dict[str, Any]:
    counts, n_missing = category_counts(series)
    known = {label: i for i, label in enumerate(fp.categories)}
    cur = np.zeros(len(fp.categories), dtype=np.int64)
    unseen: dict[str, int] = {}
    for label, c in counts.items():
        if label in known:
            cur[known[label]] += c
        elif c:
            unseen[label] = c
    ref = fp.counts
    labels = list(fp.categories)
    n_unseen = sum(unseen.values())
    out: dict[str, Any] = {
        "n": len(series),
        "n_missing": n_missing,
        "bins": labels,
        "unseen": tuple(sorted(unseen, key=unseen.get, reverse=True)),
    }
    if fp.n_valid == 0 or cur.sum() + n_unseen == 0:
        out["status"] = "no_data"
        return out
    # the test: each unseen category is a column of its own (reference count 0), and
    # pool_sparse merges the sparse ones with the reference's rare categories
    new = np.fromiter(unseen.values(), dtype=np.int64, count=len(unseen))
    r, c, tail = st.pool_sparse(np.append(ref, np.zeros_like(new)), np.append(cur, new))
    out["statistic"], out["pvalue"], _ = st.chi2_homogeneity(r, c)
    if tail and r.shape[0] > 1:
        # a flood of rare-or-new categories is one number; the chi-square spreads it
        # over all cells, so it also gets a one-sided test (Bonferroni over the two)
        p_tail = st.fisher_pvalue(
            int(r[-1]), int(r.sum()), int(c[-1]), int(c.sum()), alternative="greater"
        )
        out["pvalue"] = min(1.0, 2 * min(out["pvalue"], p_tail))
    if unseen:
        out["unseen_share"] = n_unseen / (cur.sum() + n_unseen)
        out["unseen_expected"] = st.good_turing_unseen(ref)
        ref = np.append(ref, 0)
        cur = np.append(cur, n_unseen)
        labels.append(UNSEEN)
    out["ref_share"], out["cur_share"] = _shares(ref), _shares(cur)
    out["psi"] = st.psi(out["ref_share"], out["cur_share"])
    out["status"] = "constant" if int((ref > 0).sum()) == 1 else "ok"
    return out


def _verdict(
    fp: FeatureProfile,
    part: dict[str, Any],
    p_adj: float | None,
    miss_adj: float | None,
    s: Settings,
) -> FeatureDrift:
    reasons: list[str] = []
    stat, psi_value = part.get("statistic"), part.get("psi")
    dist_drift = False
    if part["status"] == "no_data":
        reasons.append("no non-missing values on one side: no distribution test")
    elif fp.kind == "numeric":
        dist_drift = p_adj < s.ks_pvalue_threshold and stat >= s.ks_min_effect
        if dist_drift:
            reasons.append(
                f"KS D={stat:.3f} >= {s.ks_min_effect} with corrected "
                f"p={p_adj:.3g} < {s.ks_pvalue_threshold}"
            )
    else:
        dist_drift = psi_value >= s.psi_threshold and p_adj < s.chi2_pvalue_threshold
        if dist_drift:
            reasons.append(
                f"PSI={psi_value:.3f} >= {s.psi_threshold}, confirmed by chi-square "
                f"corrected p={p_adj:.3g}"
            )
    if part.get("unseen"):
        reasons.append(
            f"categories unseen in the reference ({part['unseen_share']:.1%} of "
            f"rows; Good-Turing expects {part['unseen_expected']:.1%}): "
            + ", ".join(part["unseen"][:10])
        )

    rate_ref = fp.n_missing / fp.n if fp.n else 0.0
    rate_cur = part["n_missing"] / part["n"] if part["n"] else 0.0
    miss_p = 1.0 if part["missing_p"] is None else part["missing_p"]
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
        method="ks" if fp.kind == "numeric" else "psi+chi2",
        drifted=bool(dist_drift or missing_drift),
        statistic=stat,
        pvalue=part.get("pvalue"),
        pvalue_adjusted=p_adj,
        psi=psi_value,
        threshold=s.ks_pvalue_threshold if fp.kind == "numeric" else s.psi_threshold,
        n_reference=fp.n,
        n_current=part["n"],
        status=part["status"],
        missing_rate_reference=rate_ref,
        missing_rate_current=rate_cur,
        missing_drift=bool(missing_drift),
        missing_pvalue=miss_p,
        missing_pvalue_adjusted=miss_adj,
        unseen_categories=tuple(part.get("unseen", ())),
        bins=tuple(part["bins"]),
        reference_share=tuple(float(x) for x in part.get("ref_share", ())),
        current_share=tuple(float(x) for x in part.get("cur_share", ())),
        reasons=tuple(reasons),
    )
