"""Vectorised drift injection, used by the router and by the statistical tests.

Kinds
-----
``scale`` (seed default for numeric columns; intensity in [0, 1], default 0.5)
    Each value, with probability ``intensity``, is multiplied by a factor drawn
    from U(0.1, 2.0).
``shift`` (numeric; intensity in [-10, 10], default 1.0)
    Every value is moved by ``intensity`` times the column's standard deviation.
``redraw`` (seed default for categorical columns; intensity in [0, 1], default 1.0)
    Each value, with probability ``intensity``, is redrawn uniformly from the
    column's categories.
``missing`` (any column; intensity in [0, 1], default 0.1)
    Each value, with probability ``intensity``, is set to missing.

The array kernels :func:`drift_numbers` and :func:`drift_codes` do the work; the
router's slicer calls them directly, :func:`apply_drift` through pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: every drift kind and the closed range of its ``intensity``: the one definition used by
#: injection, slicing, the router's validation and its OpenAPI schema.
INTENSITY_RANGES: dict[str, tuple[float, float]] = {
    "scale": (0.0, 1.0),
    "shift": (-10.0, 10.0),
    "redraw": (0.0, 1.0),
    "missing": (0.0, 1.0),
}
KINDS = tuple(INTENSITY_RANGES)
NUMERIC_KINDS = {"scale", "shift", "missing"}
CATEGORICAL_KINDS = {"redraw", "missing"}
#: the widest intensity any kind accepts (a schema without per-kind ranges uses this).
INTENSITY_BOUNDS = (
    min(lo for lo, _ in INTENSITY_RANGES.values()),
    max(hi for _, hi in INTENSITY_RANGES.values()),
)


@dataclass(frozen=True)
class DriftSpec:
    """Drift applied to one column. ``intensity`` meaning depends on ``kind``."""

    kind: str = "scale"
    intensity: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown drift kind {self.kind!r}; expected one of {KINDS}")
        if self.intensity is not None:
            lo, hi = intensity_range(self.kind)
            if not (lo <= float(self.intensity) <= hi):
                raise ValueError(
                    f"intensity of kind {self.kind!r} must be in [{lo}, {hi}], got {self.intensity}"
                )


def intensity_range(kind: str) -> tuple[float, float]:
    """Allowed closed range of ``intensity`` for ``kind``."""
    return INTENSITY_RANGES[kind]


def default_kind(series: pd.Series) -> str:
    """The seed's kind for a column: ``scale`` for numbers, ``redraw`` otherwise."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "scale"
    return "redraw"


def apply_drift(
    frame: pd.DataFrame, specs: Mapping[str, DriftSpec | None] | list[str], rng: np.random.Generator
) -> pd.DataFrame:
    """Return a copy of ``frame`` with drift applied to the given columns.

    Parameters
    ----------
    frame : DataFrame
        Rows to drift; not modified.
    specs : mapping of column -> DriftSpec or None, or a list of columns
        ``None`` or a bare column name means the seed's kind for that column.
    rng : numpy.random.Generator
        Source of randomness, so a seeded generator gives reproducible drift.

    Raises
    ------
    ValueError
        On an unknown column, or a kind that does not fit the column's type.
    """
    if not isinstance(specs, Mapping):
        specs = {col: None for col in specs}
    out = frame.copy()
    for col, spec in specs.items():
        if col not in out.columns:
            raise ValueError(f"unknown column {col!r}")
        out[col] = drift_series(out[col], spec, rng)
    return out


def applicable_kinds(series: pd.Series) -> set[str]:
    """Drift kinds that fit ``series``: numeric or categorical ones (``missing`` fits all)."""
    return NUMERIC_KINDS if default_kind(series) == "scale" else CATEGORICAL_KINDS


def drift_series(series: pd.Series, spec: DriftSpec | None, rng: np.random.Generator) -> pd.Series:
    """Return a drifted copy of one column (the per-column step of :func:`apply_drift`).

    Parameters
    ----------
    series : Series
        Values to drift; not modified.
    spec : DriftSpec or None
        ``None`` means the seed's kind for the column's type.
    rng : numpy.random.Generator
        Source of randomness.

    Raises
    ------
    ValueError
        If the kind does not fit the column's type.
    """
    spec = spec or DriftSpec(default_kind(series))
    if spec.kind not in applicable_kinds(series):
        what = "numeric" if default_kind(series) == "scale" else "categorical"
        raise ValueError(
            f"drift kind {spec.kind!r} does not apply to {what} column {series.name!r}"
        )
    return _apply_one(series, spec, rng)


#: Intensity used when a spec gives none (the seed's behaviour for scale and redraw).
DEFAULT_INTENSITY = {"scale": 0.5, "shift": 1.0, "redraw": 1.0, "missing": 0.1}


def intensity_of(spec: DriftSpec) -> float:
    """The spec's intensity, or the kind's default from :data:`DEFAULT_INTENSITY`."""
    return DEFAULT_INTENSITY[spec.kind] if spec.intensity is None else float(spec.intensity)


def drift_numbers(
    values: np.ndarray, kind: str, intensity: float, rng: np.random.Generator
) -> np.ndarray:
    """Drift a float64 array in place (kinds scale, shift, missing) and return it.

    The array kernels are shared by :func:`apply_drift` and the router's slicer, so
    both draw the same random numbers in the same order.
    """
    return drift_numbers_where(values, kind, intensity, rng)[0]


def drift_numbers_where(
    values: np.ndarray, kind: str, intensity: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`drift_numbers`, also returning the mask of rows it touched (None: all).

    With the mask the slicer turns ``missing`` into cell codes and formats nothing.
    """
    n = len(values)
    if kind == "scale":
        hit = rng.random(n) < intensity
        values[hit] *= rng.uniform(0.1, 2.0, size=int(hit.sum()))
        return values, hit
    if kind == "shift":
        std = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
        values += intensity * std
        return values, None
    if kind == "missing":
        hit = rng.random(n) < intensity
        values[hit] = np.nan
        return values, hit
    raise ValueError(f"drift kind {kind!r} does not apply to numbers")


def drift_codes(
    codes: np.ndarray, n_categories: int, kind: str, intensity: float, rng: np.random.Generator
) -> np.ndarray:
    """Drift categorical codes in place (kinds redraw, missing as code -1) and return them."""
    hit = rng.random(len(codes)) < intensity
    if kind == "redraw":
        codes[hit] = rng.integers(0, n_categories, size=int(hit.sum()))
    elif kind == "missing":
        codes[hit] = -1
    else:
        raise ValueError(f"drift kind {kind!r} does not apply to categories")
    return codes


def _apply_one(series: pd.Series, spec: DriftSpec, rng: np.random.Generator) -> pd.Series:
    intensity = intensity_of(spec)
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int64)
        codes = drift_codes(codes, len(series.cat.categories), spec.kind, intensity, rng)
        return pd.Series(
            pd.Categorical.from_codes(codes, dtype=series.dtype),
            index=series.index,
            name=series.name,
        )
    if default_kind(series) == "scale":
        values = drift_numbers(
            series.to_numpy(dtype=np.float64, copy=True), spec.kind, intensity, rng
        )
        return pd.Series(values, index=series.index, name=series.name)
    n = len(series)
    if spec.kind == "missing":
        return series.mask(rng.random(n) < intensity)
    # redraw of plain values (strings, booleans): uniformly among the values present
    cats = pd.unique(series.dropna())
    if len(cats) == 0:
        return series.copy()
    values = series.to_numpy(dtype=object, copy=True)
    hit = rng.random(n) < intensity
    values[hit] = cats[rng.integers(0, len(cats), size=int(hit.sum()))]
    return pd.Series(values, index=series.index, name=series.name, dtype=series.dtype)
