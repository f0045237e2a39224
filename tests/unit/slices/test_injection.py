"""Drift injection kinds: seed semantics, intensities, type checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dethrone.slices.injection import DriftSpec, apply_drift, default_kind, drift_series


def test_seed_kinds_by_default(diamonds, rng):
    frame = diamonds.iloc[:20_000]
    out = apply_drift(frame, ["carat", "color"], rng)
    ratio = out["carat"].to_numpy() / frame["carat"].to_numpy()
    changed = ~np.isclose(ratio, 1.0)
    assert 0.48 < changed.mean() < 0.52
    assert ratio[changed].min() >= 0.1 and ratio[changed].max() <= 2.0
    assert out["color"].dtype == frame["color"].dtype
    shares = out["color"].value_counts(normalize=True)
    assert np.allclose(shares, 1 / 7, atol=0.015)
    assert out["depth"].equals(frame["depth"])
    assert not frame["carat"].equals(out["carat"])  # input frame was not modified


def test_shift_moves_by_std(diamonds, rng):
    out = drift_series(diamonds["depth"], DriftSpec("shift", -1.5), rng)
    assert np.allclose(out - diamonds["depth"], -1.5 * diamonds["depth"].std(ddof=0))


@pytest.mark.parametrize("col", ["price", "cut"])
def test_missing_share(diamonds, rng, col):
    out = drift_series(diamonds[col], DriftSpec("missing", 0.2), rng)
    assert 0.19 < out.isna().mean() < 0.21


def test_scale_probability_is_intensity(diamonds, rng):
    out = drift_series(diamonds["x"].iloc[:20_000] + 1, DriftSpec("scale", 1.0), rng)
    assert (~np.isclose(out, diamonds["x"].iloc[:20_000] + 1)).mean() > 0.99


def test_redraw_of_plain_strings(rng):
    series = pd.Series(["a", "b"] * 500)
    out = drift_series(series, DriftSpec("redraw", 1.0), rng)
    assert set(out) == {"a", "b"} and 0.4 < (out == "a").mean() < 0.6


@pytest.mark.parametrize("col,kind", [("carat", "redraw"), ("cut", "scale"), ("cut", "shift")])
def test_kind_must_fit_the_column(diamonds, rng, col, kind):
    with pytest.raises(ValueError, match="does not apply"):
        apply_drift(diamonds.iloc[:10], {col: DriftSpec(kind)}, rng)


@pytest.mark.parametrize(
    "kind,intensity", [("bogus", None), ("scale", 1.5), ("shift", 11), ("missing", -0.1)]
)
def test_invalid_specs(kind, intensity):
    with pytest.raises(ValueError):
        DriftSpec(kind, intensity)


def test_unknown_column(diamonds, rng):
    with pytest.raises(ValueError, match="unknown column"):
        apply_drift(diamonds.iloc[:5], ["weight"], rng)


def test_default_kind(diamonds):
    assert default_kind(diamonds["carat"]) == "scale"
    assert default_kind(diamonds["cut"]) == "redraw"
    assert default_kind(pd.Series([True, False])) == "redraw"
