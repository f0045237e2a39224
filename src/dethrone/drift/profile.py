"""A champion's reference data, summarised once for every later drift check."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dethrone.settings import Settings

PROFILE_FORMAT = 1


@dataclass(frozen=True)
class FeatureProfile:
    """Summary of one reference column.

    Numeric columns keep their sorted distinct values (``unique``) with cumulative
    counts (``cum``) — enough for an exact KS test — and the indices into ``unique``
    of the PSI bin edges. Categorical columns keep category labels and counts.
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

    @property
    def n_valid(self) -> int:
        return self.n - self.n_missing

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


def profile_numeric(name: str, values: np.ndarray, bins: int) -> FeatureProfile:
    n = values.shape[0]
    valid = values[~np.isnan(values)]
    unique, counts = np.unique(valid, return_counts=True)
    cum = np.cumsum(counts, dtype=np.int64)
    if unique.shape[0]:
        # bin edges are reference values at the 1/bins .. (bins-1)/bins quantiles
        # ("inverted cdf"), so tied data give fewer, never empty-by-construction, bins
        targets = np.arange(1, bins) / bins * valid.shape[0]
        edge_index = np.unique(np.searchsorted(cum, targets, side="left"))
        edge_index = edge_index[edge_index < unique.shape[0] - 1]
    else:
        edge_index = np.zeros(0, dtype=np.int64)
    return FeatureProfile(
        name=name,
        kind="numeric",
        n=n,
        n_missing=n - valid.shape[0],
        unique=unique,
        cum=cum,
        edge_index=edge_index.astype(np.int64),
    )


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


@dataclass(frozen=True)
class ReferenceProfile:
    """Summary of a reference frame for fast, repeated drift checks.

    Build it once with :meth:`from_frame` (e.g. when a champion is trained), store
    it with :meth:`save`, and pass it (or the result of :meth:`load`) to
    :func:`~dethrone.drift.detect_drift` in place of the reference frame.
    """

    features: dict[str, FeatureProfile]
    n_rows: int
    columns: tuple[str, ...]
    psi_bins: int = 10
    created_at: str = ""

    @classmethod
    def from_frame(
        cls,
        reference: pd.DataFrame,
        *,
        categorical: list[str] | None = None,
        features: list[str] | None = None,
        settings: Settings | None = None,
    ) -> ReferenceProfile:
        """Summarise ``reference``.

        Parameters
        ----------
        reference : DataFrame
            The data the champion was trained on.
        categorical : list of str, optional
            Columns to treat as categorical; default: non-numeric dtypes.
        features : list of str, optional
            Columns to profile; default: all columns.
        settings : Settings, optional
            Source of ``psi_bins``; default: ``Settings()``.

        Raises
        ------
        ValueError
            If ``reference`` is not a non-empty DataFrame or a named column is absent.
        """
        if not isinstance(reference, pd.DataFrame):
            raise ValueError(
                f"reference must be a pandas DataFrame, got {type(reference).__name__}"
            )
        if len(reference) == 0:
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
                    name, numeric_values(series, name), settings.psi_bins
                )
            else:
                profiles[name] = profile_categorical(name, series)
        return cls(
            features=profiles,
            n_rows=len(reference),
            columns=tuple(str(c) for c in reference.columns),
            psi_bins=settings.psi_bins,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    @property
    def categorical(self) -> list[str]:
        return [n for n, f in self.features.items() if f.kind == "categorical"]

    def save(self, path: str | Path) -> Path:
        """Write the profile as one ``.npz`` file (no pickle); returns the path."""
        path = Path(path)
        arrays: dict[str, np.ndarray] = {}
        meta: dict[str, Any] = {
            "format": PROFILE_FORMAT,
            "n_rows": self.n_rows,
            "columns": list(self.columns),
            "psi_bins": self.psi_bins,
            "created_at": self.created_at,
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
                }
            )
            for attr in ("unique", "cum", "edge_index", "counts"):
                arrays[f"f{i}_{attr}"] = getattr(f, attr)
        arrays["meta"] = np.array(json.dumps(meta))
        path.parent.mkdir(parents=True, exist_ok=True)
        # np.savez appends .npz unless given a file object
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        """Read a profile written by :meth:`save`.

        Raises
        ------
        ValueError
            If the file is not a dethrone reference profile.
        """
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                meta = json.loads(str(data["meta"][()]))
                arrays = {k: data[k] for k in data.files if k != "meta"}
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path} is not a dethrone reference profile: {exc}") from exc
        if meta.get("format") != PROFILE_FORMAT:
            raise ValueError(f"{path}: unsupported profile format {meta.get('format')!r}")
        features = {}
        for i, fm in enumerate(meta["features"]):
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
            psi_bins=meta["psi_bins"],
            created_at=meta["created_at"],
        )
