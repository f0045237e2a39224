"""A champion's reference data, summarised once for every later drift check.

A :class:`ReferenceProfile` can be built in one pass (:meth:`ReferenceProfile.from_frame`)
or from parts -- per hour, per file, per Spark partition -- that are merged
(:meth:`ReferenceProfile.merge`, :meth:`ReferenceProfile.from_parts`):

* categorical columns and missing values keep counts, which add;
* numeric columns keep their exact distinct values and counts (enough for an exact KS
  test) up to ``exact_max_unique`` distinct values; above it, an Apache DataSketches KLL
  quantile sketch (``kll_doubles_sketch``, parameter ``sketch_k``), which merges too. A
  sketch's normalised rank error ``eps`` (DataSketches' single-sided bound for rank
  queries at 99% confidence, ``normalized_rank_error(False)``: 0.14% at k = 2000) bounds
  its CDF error at every point, so a KS statistic from sketches is within the sum of both
  sides' ``eps`` of the exact one.

Exact parts merge to exactly the profile of the whole (same values, counts, PSI bins).
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from datasketches import kll_doubles_sketch

from dethrone.settings import Settings

#: format of profiles whose columns are all exact: readable by every dethrone version
PROFILE_FORMAT = 1
#: format of profiles with at least one KLL sketch (the sketch's bytes are stored too)
SKETCH_FORMAT = 2
#: numeric columns keep exact counts up to this many distinct values, then a sketch
EXACT_MAX_UNIQUE = 100_000
#: KLL parameter k of the sketches: normalised rank error 0.14% (single-sided, 99%)
SKETCH_K = 2000
#: values fed to a sketch per ``update`` call when converting exact counts to a sketch
_SKETCH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FeatureProfile:
    """Summary of one column (of the reference, or of current data).

    Numeric columns keep sorted distinct values (``unique``) with cumulative counts
    (``cum``) -- enough for an exact KS test -- and the indices into ``unique`` of the
    PSI bin edges. Above the profile's cap of distinct values they keep a KLL sketch
    (``sketch``) instead, and ``unique``/``cum`` are the sketch's retained items with
    their cumulative weights (the sketch's CDF: ``cum[-1] == n_valid``), so every
    computation reads the same two arrays; :attr:`rank_error` then bounds the error of
    that CDF at every point. Categorical columns keep category labels and counts.
    """

    name: str
    kind: str  # "numeric" or "categorical"
    n: int
    n_missing: int
    unique: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cum: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    edge_index: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    categories: tuple[str, ...] = ()
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sketch: kll_doubles_sketch | None = None

    @property
    def n_valid(self) -> int:
        return self.n - self.n_missing

    @property
    def exact(self) -> bool:
        """True unless the column is summarised by a sketch."""
        return self.sketch is None

    @property
    def rank_error(self) -> float:
        """Bound on |CDF from this summary - exact CDF| at every point (0 when exact).

        DataSketches' single-sided normalised rank error of the sketch: the 99th
        percentile of the maximum rank error measured over thousands of trials.
        """
        return 0.0 if self.sketch is None else float(self.sketch.normalized_rank_error(False))

    @cached_property
    def value_counts(self) -> np.ndarray:
        """Count (or sketch weight) of each of ``unique``."""
        return np.diff(self.cum, prepend=0)

    def cdf_at(self, x: np.ndarray, *, strict: bool = False) -> np.ndarray:
        """Number of values <= x (``strict``: < x) for each of the sorted-or-not ``x``."""
        if self.unique.shape[0] == 0:
            return np.zeros(np.shape(x), dtype=np.int64)
        idx = np.searchsorted(self.unique, x, side="left" if strict else "right")
        return np.where(idx > 0, self.cum[np.maximum(idx - 1, 0)], 0)

    def bin_counts(self) -> np.ndarray:
        """Reference counts in the PSI bins (-inf, e1], (e1, e2], ..., (ek, inf).

        A constant column gets the three bins below, at and above its value, so that
        PSI sees current values that differ from it.
        """
        if self.kind != "numeric":
            return self.counts
        if self.n_valid == 0:
            return np.zeros(0, dtype=np.int64)
        if self.unique.shape[0] == 1:  # constant: bins below, at and above the value
            return np.array([0, self.n_valid, 0], dtype=np.int64)
        upper = np.append(self.cum[self.edge_index], self.n_valid)
        return np.diff(upper, prepend=0)

    def bin_labels(self) -> list[str]:
        """Human-readable labels of the PSI bins (or the category labels)."""
        if self.kind != "numeric":
            return list(self.categories)
        if self.n_valid == 0:
            return []
        if self.unique.shape[0] == 1:
            v = f"{self.unique[0]:.4g}"
            return [f"< {v}", f"= {v}", f"> {v}"]
        edges = [f"{v:.4g}" for v in self.unique[self.edge_index]]
        if not edges:
            return ["all"]
        labels = [f"<= {edges[0]}"]
        labels += [f"({a}, {b}]" for a, b in zip(edges[:-1], edges[1:], strict=False)]
        labels.append(f"> {edges[-1]}")
        return labels


def feature_kind(series: pd.Series, name: str, categorical: set[str]) -> str:
    """ "numeric" or "categorical" for a column; ValueError for unsupported dtypes."""
    if name in categorical:
        return "categorical"
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise ValueError(
            f"column {name!r} has dtype {dtype}, which drift detection does not support; "
            "convert it to a number or pass features= without it"
        )
    return "categorical"


def numeric_values(series: pd.Series, name: str) -> np.ndarray:
    """The column as float64 with missing values as NaN; ValueError if not numeric."""
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise ValueError(
            f"column {name!r} is numeric in the reference but has dtype {series.dtype} "
            "in the current data"
        )
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def category_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Counts per category label (as str) and the number of missing values."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy()
        valid = codes >= 0
        per_code = np.bincount(codes[valid], minlength=len(series.cat.categories))
        counts: dict[str, int] = {}
        for label, c in zip(series.cat.categories, per_code, strict=False):
            key = str(label)
            counts[key] = counts.get(key, 0) + int(c)
        return counts, int((~valid).sum())
    vc = series.value_counts(dropna=True, sort=False)
    counts = {}
    for label, c in vc.items():
        key = str(label)
        counts[key] = counts.get(key, 0) + int(c)
    return counts, int(len(series) - vc.sum())


def _edge_index(cum: np.ndarray, bins: int) -> np.ndarray:
    """Indices of the PSI bin edges: values at the 1/bins .. (bins-1)/bins quantiles.

    "Inverted cdf" quantiles, so tied data give fewer, never empty-by-construction, bins.
    """
    if cum.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    targets = np.arange(1, bins) / bins * cum[-1]
    edge_index = np.unique(np.searchsorted(cum, targets, side="left"))
    return edge_index[edge_index < cum.shape[0] - 1].astype(np.int64)


def _exact_numeric(
    name: str, n: int, n_missing: int, unique: np.ndarray, counts: np.ndarray, bins: int
) -> FeatureProfile:
    cum = np.cumsum(counts, dtype=np.int64)
    return FeatureProfile(
        name=name,
        kind="numeric",
        n=n,
        n_missing=n_missing,
        unique=unique.astype(np.float64, copy=False),
        cum=cum,
        edge_index=_edge_index(cum, bins),
    )


def sketch_feature(
    name: str, n: int, n_missing: int, sketch: kll_doubles_sketch, bins: int
) -> FeatureProfile:
    """A numeric :class:`FeatureProfile` read from a KLL sketch of its valid values."""
    # the sketch's own CDF at its retained items (not the iterator's weights: in
    # datasketches 5.2.0 they read 1 for every item of a merged sketch)
    unique = np.unique(np.fromiter((item for item, _ in sketch), dtype=np.float64))
    if unique.shape[0]:
        ranks = np.asarray(sketch.get_cdf(unique.tolist(), True), dtype=np.float64)[:-1]
        cum = np.maximum.accumulate(np.rint(ranks * sketch.n).astype(np.int64))
        cum[-1] = sketch.n
    else:
        cum = np.zeros(0, dtype=np.int64)
    return FeatureProfile(
        name=name,
        kind="numeric",
        n=n,
        n_missing=n_missing,
        unique=unique,
        cum=cum,
        edge_index=_edge_index(cum, bins),
        sketch=sketch,
    )


def counts_to_sketch(unique: np.ndarray, counts: np.ndarray, k: int) -> kll_doubles_sketch:
    """A KLL sketch of the values ``unique`` repeated ``counts`` times (bounded memory)."""
    sk = kll_doubles_sketch(k)
    cum = np.cumsum(counts, dtype=np.int64)
    start = 0
    while start < unique.shape[0]:
        base = int(cum[start - 1]) if start else 0
        stop = max(int(np.searchsorted(cum, base + _SKETCH_CHUNK, side="right")), start + 1)
        block = counts[start:stop]
        if block.sum() <= _SKETCH_CHUNK:
            sk.update(np.repeat(unique[start:stop], block).astype(np.float64))
        else:  # one value with a huge count
            left = int(block[0])
            while left:
                take = min(left, _SKETCH_CHUNK)
                sk.update(np.full(take, unique[start], dtype=np.float64))
                left -= take
        start = stop
    return sk


def _sketch_of(f: FeatureProfile, k: int) -> kll_doubles_sketch:
    return counts_to_sketch(f.unique, f.value_counts, k)


def _cap_ok(n_unique: int, cap: int | None) -> bool:
    return cap is None or n_unique <= cap


def profile_numeric(
    name: str,
    values: np.ndarray,
    bins: int,
    *,
    exact_max_unique: int | None = None,
    sketch_k: int = SKETCH_K,
) -> FeatureProfile:
    """Profile of float values (NaN = missing): exact up to ``exact_max_unique``
    distinct values (None: no cap), a KLL sketch above it."""
    n = values.shape[0]
    valid = values[~np.isnan(values)]
    unique, counts = np.unique(valid, return_counts=True)
    if _cap_ok(unique.shape[0], exact_max_unique):
        return _exact_numeric(name, n, n - valid.shape[0], unique, counts, bins)
    del unique, counts
    sk = kll_doubles_sketch(sketch_k)
    sk.update(np.ascontiguousarray(valid))
    return sketch_feature(name, n, n - valid.shape[0], sk, bins)


def profile_categorical(name: str, series: pd.Series) -> FeatureProfile:
    counts, n_missing = category_counts(series)
    labels = tuple(counts)
    return FeatureProfile(
        name=name,
        kind="categorical",
        n=len(series),
        n_missing=n_missing,
        categories=labels,
        counts=np.array([counts[k] for k in labels], dtype=np.int64),
    )


def _as_kind(f: FeatureProfile, kind: str) -> FeatureProfile:
    """A profile without valid values, re-labelled as ``kind`` (to merge with others)."""
    return FeatureProfile(name=f.name, kind=kind, n=f.n, n_missing=f.n_missing)


def merge_features(
    a: FeatureProfile,
    b: FeatureProfile,
    *,
    bins: int,
    exact_max_unique: int | None = EXACT_MAX_UNIQUE,
    sketch_k: int = SKETCH_K,
) -> FeatureProfile:
    """The profile of the union of the rows ``a`` and ``b`` summarise.

    Counts add. Two exact numeric summaries stay exact while their union has at most
    ``exact_max_unique`` distinct values and become one KLL sketch above it; a sketch
    merged with anything stays a sketch. A side without valid values takes the other's
    kind; otherwise kinds must agree (ValueError naming the column).
    """
    if a.kind != b.kind:
        if a.n_valid == 0:
            a = _as_kind(a, b.kind)
        elif b.n_valid == 0:
            b = _as_kind(b, a.kind)
        else:
            raise ValueError(
                f"column {a.name!r} is {a.kind} in one part and {b.kind} in another; "
                "pass categorical= so that every part profiles it the same way"
            )
    n, n_missing = a.n + b.n, a.n_missing + b.n_missing
    if a.kind == "categorical":
        merged: dict[str, int] = dict(zip(a.categories, a.counts.tolist(), strict=True))
        for label, c in zip(b.categories, b.counts.tolist(), strict=True):
            merged[label] = merged.get(label, 0) + c
        return FeatureProfile(
            name=a.name,
            kind="categorical",
            n=n,
            n_missing=n_missing,
            categories=tuple(merged),
            counts=np.fromiter(merged.values(), dtype=np.int64, count=len(merged)),
        )
    if a.exact and b.exact:
        unique = np.union1d(a.unique, b.unique)
        counts = np.zeros(unique.shape[0], dtype=np.int64)
        counts[np.searchsorted(unique, a.unique)] += a.value_counts
        counts[np.searchsorted(unique, b.unique)] += b.value_counts
        if _cap_ok(unique.shape[0], exact_max_unique):
            return _exact_numeric(a.name, n, n_missing, unique, counts, bins)
        return sketch_feature(
            a.name, n, n_missing, counts_to_sketch(unique, counts, sketch_k), bins
        )
    sk = copy.copy(a.sketch) if a.sketch is not None else _sketch_of(a, sketch_k)
    sk.merge(b.sketch if b.sketch is not None else _sketch_of(b, sketch_k))
    return sketch_feature(a.name, n, n_missing, sk, bins)


@dataclass(frozen=True)
class ReferenceProfile:
    """Summary of a frame for fast, repeated drift checks; mergeable across parts.

    Build it once with :meth:`from_frame` (e.g. when a champion is trained), or per part
    and :meth:`merge` the parts; store it with :meth:`save` (or :meth:`to_bytes`), and
    pass it (or the result of :meth:`load`) to :func:`~dethrone.drift.detect_drift` in
    place of the reference frame -- or of the current frame.

    ``exact_max_unique`` (None: no cap) and ``sketch_k`` say when and how numeric
    columns switch from exact counts to a KLL sketch.
    """

    features: dict[str, FeatureProfile]
    n_rows: int
    columns: tuple[str, ...]
    psi_bins: int = 10
    created_at: str = ""
    exact_max_unique: int | None = EXACT_MAX_UNIQUE
    sketch_k: int = SKETCH_K

    @classmethod
    def from_frame(
        cls,
        reference: pd.DataFrame,
        *,
        categorical: list[str] | None = None,
        features: list[str] | None = None,
        settings: Settings | None = None,
        exact_max_unique: int | None = EXACT_MAX_UNIQUE,
        sketch_k: int = SKETCH_K,
        allow_empty: bool = False,
    ) -> ReferenceProfile:
        """Summarise ``reference``.

        Parameters
        ----------
        reference : DataFrame
            The data the champion was trained on (or one part of it).
        categorical : list of str, optional
            Columns to treat as categorical; default: non-numeric dtypes.
        features : list of str, optional
            Columns to profile; default: all columns.
        settings : Settings, optional
            Source of ``psi_bins``; default: ``Settings()``.
        exact_max_unique : int or None
            Numeric columns with more distinct values than this are summarised by a KLL
            sketch (default ``EXACT_MAX_UNIQUE``); None keeps every column exact.
        sketch_k : int
            The KLL sketches' parameter k (default ``SKETCH_K``).
        allow_empty : bool
            Accept a frame with no rows (an empty part, e.g. an empty Spark partition).

        Raises
        ------
        ValueError
            If ``reference`` is not a DataFrame, is empty (unless ``allow_empty``), or
            a named column is absent.
        """
        if not isinstance(reference, pd.DataFrame):
            raise ValueError(
                f"reference must be a pandas DataFrame, got {type(reference).__name__}"
            )
        if len(reference) == 0 and not allow_empty:
            raise ValueError("reference is empty (0 rows)")
        settings = settings or Settings()
        names = list(reference.columns) if features is None else list(features)
        for name in names:
            if name not in reference.columns:
                raise ValueError(f"feature {name!r} is not a column of the reference")
        cats = set(categorical or [])
        profiles: dict[str, FeatureProfile] = {}
        for name in names:
            series = reference[name]
            if feature_kind(series, name, cats) == "numeric":
                profiles[name] = profile_numeric(
                    name,
                    numeric_values(series, name),
                    settings.psi_bins,
                    exact_max_unique=exact_max_unique,
                    sketch_k=sketch_k,
                )
            else:
                profiles[name] = profile_categorical(name, series)
        return cls(
            features=profiles,
            n_rows=len(reference),
            columns=tuple(str(c) for c in reference.columns),
            psi_bins=settings.psi_bins,
            created_at=_now(),
            exact_max_unique=exact_max_unique,
            sketch_k=sketch_k,
        )

    @classmethod
    def from_parts(cls, parts: Iterable[pd.DataFrame], **kwargs: Any) -> ReferenceProfile:
        """Profile each frame of ``parts`` (keyword arguments as :meth:`from_frame`) and
        merge them; only one part is in memory at a time if ``parts`` is a generator.

        Raises
        ------
        ValueError
            If there are no parts, or all of them are empty.
        """
        kwargs.setdefault("allow_empty", True)
        merged: ReferenceProfile | None = None
        for part in parts:
            p = cls.from_frame(part, **kwargs)
            merged = p if merged is None else merged.merge(p)
        if merged is None or merged.n_rows == 0:
            raise ValueError("reference is empty (no parts, or 0 rows in all of them)")
        return merged

    def merge(self, *others: ReferenceProfile) -> ReferenceProfile:
        """The profile of all rows summarised by ``self`` and ``others``.

        Every part must profile the same features with the same PSI bins; a column's
        kind may differ only where a part has no valid value in it. Numeric columns
        stay exact while the merged column has at most ``exact_max_unique`` distinct
        values (the smaller cap of the parts), and become a KLL sketch above it.

        Raises
        ------
        ValueError
            On parts with different features, PSI bins or (non-empty) column kinds.
        """
        out = self
        for other in others:
            if not isinstance(other, ReferenceProfile):
                raise ValueError(f"cannot merge a {type(other).__name__} into a profile")
            if list(other.features) != list(out.features):
                raise ValueError(
                    f"parts profile different features: {list(out.features)} vs "
                    f"{list(other.features)}"
                )
            if other.psi_bins != out.psi_bins:
                raise ValueError(
                    f"parts use different PSI bins: {out.psi_bins} vs {other.psi_bins}"
                )
            caps = [c for c in (out.exact_max_unique, other.exact_max_unique) if c is not None]
            cap = min(caps) if caps else None
            k = min(out.sketch_k, other.sketch_k)
            features = {
                name: merge_features(
                    f, other.features[name], bins=out.psi_bins, exact_max_unique=cap, sketch_k=k
                )
                for name, f in out.features.items()
            }
            columns = out.columns + tuple(c for c in other.columns if c not in out.columns)
            out = ReferenceProfile(
                features=features,
                n_rows=out.n_rows + other.n_rows,
                columns=columns,
                psi_bins=out.psi_bins,
                created_at=_now(),
                exact_max_unique=cap,
                sketch_k=k,
            )
        return out

    @property
    def categorical(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "categorical"]

    @property
    def exact(self) -> bool:
        """True when no column is summarised by a sketch."""
        return all(f.exact for f in self.features.values())

    def to_bytes(self) -> bytes:
        """The profile as the bytes of one ``.npz`` archive (no pickle).

        Format 1 (what every dethrone version reads) when every column is exact;
        format 2, which adds each sketch's serialised bytes, otherwise.
        """
        # Any: np.savez_compressed types its keyword arrays apart from allow_pickle: bool
        arrays: dict[str, Any] = {}
        meta: dict[str, Any] = {
            "format": PROFILE_FORMAT if self.exact else SKETCH_FORMAT,
            "n_rows": self.n_rows,
            "columns": list(self.columns),
            "psi_bins": self.psi_bins,
            "created_at": self.created_at,
            "exact_max_unique": self.exact_max_unique,
            "sketch_k": self.sketch_k,
            "features": [],
        }
        for i, (name, f) in enumerate(self.features.items()):
            meta["features"].append(
                {
                    "name": name,
                    "kind": f.kind,
                    "n": f.n,
                    "n_missing": f.n_missing,
                    "categories": list(f.categories),
                    "sketch": f.sketch is not None,
                }
            )
            if f.sketch is not None:  # unique/cum are re-read from the sketch
                arrays[f"f{i}_sketch"] = np.frombuffer(f.sketch.serialize(), dtype=np.uint8)
                continue
            for attr in ("unique", "cum", "edge_index", "counts"):
                arrays[f"f{i}_{attr}"] = getattr(f, attr)
        arrays["meta"] = np.array(json.dumps(meta))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the profile as one ``.npz`` file (see :meth:`to_bytes`); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "data") -> ReferenceProfile:
        """Read a profile written by :meth:`to_bytes` (formats 1 and 2).

        Raises
        ------
        ValueError
            If ``data`` is not a dethrone reference profile.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"][()]))
                arrays = {k: npz[k] for k in npz.files if k != "meta"}
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise ValueError(f"{source} is not a dethrone reference profile: {exc}") from exc
        if meta.get("format") not in (PROFILE_FORMAT, SKETCH_FORMAT):
            raise ValueError(f"{source}: unsupported profile format {meta.get('format')!r}")
        bins = meta["psi_bins"]
        features = {}
        for i, fm in enumerate(meta["features"]):
            if fm.get("sketch"):
                sk = kll_doubles_sketch.deserialize(arrays[f"f{i}_sketch"].tobytes())
                features[fm["name"]] = sketch_feature(
                    fm["name"], fm["n"], fm["n_missing"], sk, bins
                )
                continue
            features[fm["name"]] = FeatureProfile(
                name=fm["name"],
                kind=fm["kind"],
                n=fm["n"],
                n_missing=fm["n_missing"],
                unique=arrays[f"f{i}_unique"],
                cum=arrays[f"f{i}_cum"],
                edge_index=arrays[f"f{i}_edge_index"],
                categories=tuple(fm["categories"]),
                counts=arrays[f"f{i}_counts"],
            )
        return cls(
            features=features,
            n_rows=meta["n_rows"],
            columns=tuple(meta["columns"]),
            psi_bins=bins,
            created_at=meta["created_at"],
            # profiles saved before merging existed were exact whatever their size
            exact_max_unique=meta.get("exact_max_unique", EXACT_MAX_UNIQUE),
            sketch_k=meta.get("sketch_k", SKETCH_K),
        )

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save` (or by any earlier dethrone version).

        Raises
        ------
        ValueError
            If the file is not a dethrone reference profile.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{path} is not a dethrone reference profile: {exc}") from exc
        return cls.from_bytes(data, source=str(path))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
