"""ReferenceProfile: summaries, round trip and bad files."""

import numpy as np
import pandas as pd
import pytest

from dethrone.drift import ReferenceProfile
from dethrone.settings import Settings


def test_round_trip(diamonds, tmp_path):
    profile = ReferenceProfile.from_frame(diamonds.head(2000), settings=Settings())
    loaded = ReferenceProfile.load(profile.save(tmp_path / "sub" / "ref.npz"))
    assert loaded.columns == profile.columns and loaded.n_rows == 2000
    for name, f in profile.features.items():
        g = loaded.features[name]
        assert (f.kind, f.n, f.n_missing, f.categories) == (g.kind, g.n, g.n_missing, g.categories)
        np.testing.assert_array_equal(f.unique, g.unique)
        np.testing.assert_array_equal(f.counts, g.counts)


def test_numeric_bins_are_reference_deciles(rng):
    values = rng.normal(size=10_000)
    f = ReferenceProfile.from_frame(pd.DataFrame({"v": values}), settings=Settings()).features["v"]
    shares = f.bin_counts() / 10_000
    assert len(shares) == 10 and np.allclose(shares, 0.1, atol=1e-3)


def test_tied_values_give_fewer_bins():
    f = ReferenceProfile.from_frame(
        pd.DataFrame({"v": [1.0] * 90 + [2.0] * 10}), settings=Settings()
    ).features["v"]
    assert f.bin_counts().tolist() == [90, 10]


def test_categorical_counts_and_missing():
    s = pd.Series(["a", "b", None, "a"], dtype=object)
    f = ReferenceProfile.from_frame(pd.DataFrame({"c": s}), settings=Settings()).features["c"]
    assert f.kind == "categorical" and f.n_missing == 1
    assert dict(zip(f.categories, f.counts.tolist(), strict=False)) == {"a": 2, "b": 1}


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a profile")
    with pytest.raises(ValueError, match="not a dethrone reference profile"):
        ReferenceProfile.load(bad)


def test_unknown_feature(diamonds):
    with pytest.raises(ValueError, match="'nope'"):
        ReferenceProfile.from_frame(diamonds.head(10), features=["nope"], settings=Settings())
