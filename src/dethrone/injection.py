"""Vectorised drift injection, used by the router and by the statistical tests.

Kinds
-----
``scale`` (seed default for numeric columns)
    Each value, with probability ``probability`` (default 0.5), is multiplied by a
    factor drawn from U(``low``, ``high``) (default U(0.1, 2.0)).
``shift`` (numeric)
    Every value is moved by ``intensity`` times the column's standard deviation.
``redraw`` (seed default for categorical columns)
    Each value, with probability ``intensity`` (default 1.0: all of them), is redrawn
    uniformly from the column's categories.
``missing`` (any column)
    A share ``intensity`` of the values is set to missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("scale", "shift", "redraw", "missing")
NUMERIC_KINDS = {"scale", "shift", "missing"}
CATEGORICAL_KINDS = {"redraw", "missing"}


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
                    f"intensity of kind {self.kind!r} must be in [{lo}, {hi}], "
                    f"got {self.intensity}")


def intensity_range(kind: str) -> tuple[float, float]:
    """Allowed closed range of ``intensity`` for ``kind``."""
    return {"scale": (0.0, 1.0), "shift": (-10.0, 10.0),
            "redraw": (0.0, 1.0), "missing": (0.0, 1.0)}[kind]


def default_kind(series: pd.Series) -> str:
    """The seed's kind for a column: ``scale`` for numbers, ``redraw`` otherwise."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return "scale"
    return "redraw"


def apply_drift(frame: pd.DataFrame, specs: Mapping[str, DriftSpec | None] | list[str],
                rng: np.random.Generator) -> pd.DataFrame:
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
        series = out[col]
        spec = spec or DriftSpec(default_kind(series))
        numeric = default_kind(series) == "scale"
        if numeric and spec.kind not in NUMERIC_KINDS:
            raise ValueError(f"drift kind {spec.kind!r} does not apply to numeric column {col!r}")
        if not numeric and spec.kind not in CATEGORICAL_KINDS:
            raise ValueError(
                f"drift kind {spec.kind!r} does not apply to categorical column {col!r}")
        out[col] = _apply_one(series, spec, rng)
    return out


def _apply_one(series: pd.Series, spec: DriftSpec, rng: np.random.Generator) -> pd.Series:
    n = len(series)
    if spec.kind == "scale":
        prob = 0.5 if spec.intensity is None else float(spec.intensity)
        values = series.to_numpy(dtype=np.float64, copy=True)
        hit = rng.random(n) < prob
        values[hit] *= rng.uniform(0.1, 2.0, size=int(hit.sum()))
        return pd.Series(values, index=series.index, name=series.name)
    if spec.kind == "shift":
        k = 1.0 if spec.intensity is None else float(spec.intensity)
        values = series.to_numpy(dtype=np.float64, copy=True)
        std = float(np.nanstd(values)) if np.isfinite(values).any() else 0.0
        return pd.Series(values + k * std, index=series.index, name=series.name)
    if spec.kind == "missing":
        share = 0.1 if spec.intensity is None else float(spec.intensity)
        hit = rng.random(n) < share
        if isinstance(series.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
                series):
            return series.mask(hit)
        values = series.to_numpy(dtype=np.float64, copy=True)
        values[hit] = np.nan
        return pd.Series(values, index=series.index, name=series.name)
    # redraw
    prob = 1.0 if spec.intensity is None else float(spec.intensity)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = series.cat.categories
        codes = series.cat.codes.to_numpy(copy=True)
        hit = rng.random(n) < prob
        codes[hit] = rng.integers(0, len(cats), size=int(hit.sum()))
        return pd.Series(pd.Categorical.from_codes(codes, dtype=series.dtype),
                         index=series.index, name=series.name)
    cats = pd.unique(series.dropna())
    if len(cats) == 0:
        return series.copy()
    values = series.to_numpy(dtype=object, copy=True)
    hit = rng.random(n) < prob
    values[hit] = cats[rng.integers(0, len(cats), size=int(hit.sum()))]
    return pd.Series(values, index=series.index, name=series.name, dtype=series.dtype)
