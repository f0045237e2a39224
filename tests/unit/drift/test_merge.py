"""Mergeable profiles: exact parts merge to the profile of the whole; KLL sketches stay
within their stated bound; detect_drift(profile, profile) equals detect_drift(profile, frame).
"""

import io
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.drift.profile import PROFILE_FORMAT, SKETCH_FORMAT
from dethrone.drift.stattests import ks_between
from dethrone.settings import Settings

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


def _messy(rng, n: int = 3000) -> pd.DataFrame:
    """NaN, a category only late rows have, a constant, an all-missing column, ints, bools."""
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n).round(2),
            "cat": rng.choice(["a", "b", "c", None], size=n, p=[0.5, 0.3, 0.15, 0.05]),
            "const": np.full(n, 3.0),
            "empty": np.full(n, np.nan),
            "ints": rng.integers(0, 20, size=n),
            "flag": rng.random(n) < 0.3,
            "dtype_cat": pd.Categorical(rng.choice(["x", "y"], size=n), categories=["x", "y", "z"]),
        }
    )
    frame.loc[rng.random(n) < 0.1, "num"] = np.nan
    frame.loc[n - 50 :, "cat"] = "late"  # unseen in every part but the last
    return frame


def _assert_same_profile(a: ReferenceProfile, b: ReferenceProfile) -> None:
    assert (a.n_rows, a.columns, a.psi_bins) == (b.n_rows, b.columns, b.psi_bins)
    assert list(a.features) == list(b.features)
    for name, f in a.features.items():
        g = b.features[name]
        assert (f.kind, f.n, f.n_missing, f.exact) == (g.kind, g.n, g.n_missing, g.exact), name
        np.testing.assert_array_equal(f.unique, g.unique)
        np.testing.assert_array_equal(f.cum, g.cum)
        np.testing.assert_array_equal(f.edge_index, g.edge_index)
        assert dict(zip(f.categories, f.counts.tolist(), strict=True)) == dict(
            zip(g.categories, g.counts.tolist(), strict=True)
        ), name


def _split(frame: pd.DataFrame, n: int) -> list[pd.DataFrame]:
    return [frame.iloc[idx] for idx in np.array_split(np.arange(len(frame)), n)]


def _same_report(a, b) -> None:
    x, y = a.to_dict(), b.to_dict()
    x.pop("created_at"), y.pop("created_at")
    assert x == y


@pytest.mark.parametrize("n_parts", [1, 2, 7])
def test_merged_exact_parts_equal_the_whole(rng, n_parts):
    frame = _messy(rng)
    cur = _messy(np.random.default_rng(1))
    cur.loc[:599, "cat"] = "new"
    whole = ReferenceProfile.from_frame(frame)
    merged = ReferenceProfile.from_parts(_split(frame, n_parts))
    assert merged.exact and whole.exact
    _assert_same_profile(merged, whole)
    # and so every verdict, statistic and share
    _same_report(detect_drift(merged, cur), detect_drift(whole, cur))
    # the merged profile survives its byte form
    _assert_same_profile(ReferenceProfile.from_bytes(merged.to_bytes()), whole)


def test_merge_in_any_grouping(rng):
    frame = _messy(rng)
    a, b, c = (ReferenceProfile.from_frame(p) for p in _split(frame, 3))
    _assert_same_profile(a.merge(b).merge(c), a.merge(b.merge(c)))
    _assert_same_profile(a.merge(b, c), ReferenceProfile.from_frame(frame))


def test_empty_part_and_all_missing_part_merge(rng):
    frame = _messy(rng)
    empty = frame.iloc[:0]
    # a part where "cat" has no values at all is read as numeric (all-NaN float column)
    odd = frame.iloc[:10].assign(cat=np.nan)
    merged = ReferenceProfile.from_parts([empty, odd, frame.iloc[10:]])
    whole = ReferenceProfile.from_frame(pd.concat([odd, frame.iloc[10:]]).astype({"cat": object}))
    _assert_same_profile(merged, whole)


def test_merge_refuses_mismatched_parts(rng):
    frame = _messy(rng)
    a = ReferenceProfile.from_frame(frame)
    b = ReferenceProfile.from_frame(frame.assign(num=frame["num"].astype(str)))
    with pytest.raises(ValueError, match="'num' is numeric in one part and categorical"):
        a.merge(b)
    with pytest.raises(ValueError, match="different features"):
        a.merge(ReferenceProfile.from_frame(frame[["num"]]))
    with pytest.raises(ValueError, match="PSI bins"):
        a.merge(ReferenceProfile.from_frame(frame, settings=Settings(psi_bins=5)))
    with pytest.raises(ValueError, match="no parts"):
        ReferenceProfile.from_parts([])


def test_profile_vs_profile_equals_profile_vs_frame(diamonds, rng):
    from dethrone.slices.injection import DriftSpec, apply_drift

    ref = diamonds.iloc[rng.choice(len(diamonds), 5000, replace=False)][FEATURES]
    for drift in (["carat", "color"], {"table": DriftSpec("missing", 0.2)}, []):
        cur = diamonds.iloc[rng.choice(len(diamonds), 4000, replace=False)][FEATURES]
        cur = apply_drift(cur.reset_index(drop=True), drift, rng) if drift else cur
        cur = cur.copy()
        cur["cut"] = cur["cut"].astype(str)
        cur.loc[cur.index[:300], "cut"] = "Unknown"  # unseen category
        profile = ReferenceProfile.from_frame(ref)
        current = ReferenceProfile.from_parts(_split(cur, 3))
        by_profile = detect_drift(profile, current)
        _same_report(by_profile, detect_drift(profile, cur))
        _same_report(by_profile, detect_drift(ref, cur))


def test_profile_vs_profile_schema(rng):
    frame = _messy(rng)
    ref = ReferenceProfile.from_frame(frame)
    cur = ReferenceProfile.from_frame(frame.drop(columns=["ints"]).assign(extra=1))
    report = detect_drift(ref, cur)
    assert report.missing_columns == ("ints",) and report.extra_columns == ("extra",)
    assert report.n_current == len(frame)
    bad = ReferenceProfile.from_frame(frame.assign(num=frame["num"].astype(str)))
    with pytest.raises(ValueError, match="'num' is numeric in the reference but categorical"):
        detect_drift(ref, bad)


# --- sketches ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big():
    """Continuous columns of 300,000 rows a side: above any small cap of distinct values."""
    g = np.random.default_rng(7)
    n = 300_000
    ref = g.lognormal(0, 0.6, n)
    return {
        "ref": ref,
        "same": g.lognormal(0, 0.6, n),
        "shifted": g.lognormal(0.05, 0.6, n),
        "wide": g.lognormal(0, 0.9, n),
    }


def _sketched(values: np.ndarray, parts: int = 1) -> ReferenceProfile:
    frames = [pd.DataFrame({"v": p}) for p in np.array_split(values, parts)]
    return ReferenceProfile.from_parts(frames, exact_max_unique=1000)


@pytest.mark.parametrize("which", ["same", "shifted", "wide"])
def test_sketch_ks_within_stated_bound(big, which):
    ref = _sketched(big["ref"], parts=4)  # merged from 4 sketched parts
    cur = _sketched(big[which], parts=3)
    assert not ref.exact and not cur.exact
    exact = stats.ks_2samp(big["ref"], big[which]).statistic
    f = detect_drift(ref, cur).features["v"]
    bound = ref.features["v"].rank_error + cur.features["v"].rank_error
    assert f.statistic_error == pytest.approx(bound) and 0 < bound < 0.005
    assert not f.exact
    assert abs(f.statistic - exact) <= bound, (f.statistic, exact, bound)
    # sketch against the raw current frame: only the reference's error remains
    g = detect_drift(ref, pd.DataFrame({"v": big[which]})).features["v"]
    assert g.statistic_error == pytest.approx(ref.features["v"].rank_error)
    assert abs(g.statistic - exact) <= g.statistic_error


def test_sketch_verdicts(big):
    ref = _sketched(big["ref"])
    assert not detect_drift(ref, _sketched(big["same"])).drifted
    report = detect_drift(ref, _sketched(big["wide"]))
    f = report.features["v"]
    assert f.drifted and f.statistic - f.statistic_error >= 0.05
    assert "sketch" in f.reasons[0]


def test_exact_parts_over_the_cap_become_a_sketch(big):
    values = big["ref"][:40_000]
    parts = [pd.DataFrame({"v": p}) for p in np.array_split(values, 4)]  # 10,000 each
    merged = ReferenceProfile.from_parts(parts, exact_max_unique=25_000)
    f = merged.features["v"]
    assert not f.exact and f.sketch.n == 40_000 and f.cum[-1] == 40_000
    whole = ReferenceProfile.from_frame(pd.DataFrame({"v": values}), exact_max_unique=None)
    d = ks_between(whole.features["v"], f)  # the sketch's CDF against the exact one
    assert d <= f.rank_error


def test_sketch_round_trip_keeps_the_sketch(big, tmp_path):
    frame = pd.DataFrame({"v": big["ref"], "c": np.where(big["ref"] > 1, "hi", "lo")})
    p = ReferenceProfile.from_frame(frame, exact_max_unique=1000)
    loaded = ReferenceProfile.load(p.save(tmp_path / "p.npz"))
    with np.load(tmp_path / "p.npz") as npz:
        assert json.loads(str(npz["meta"][()]))["format"] == SKETCH_FORMAT
    f, g = p.features["v"], loaded.features["v"]
    assert g.sketch.n == f.sketch.n and g.rank_error == f.rank_error
    np.testing.assert_array_equal(f.unique, g.unique)
    np.testing.assert_array_equal(f.cum, g.cum)
    cur = pd.DataFrame({"v": big["shifted"], "c": "lo"})
    _same_report(detect_drift(p, cur), detect_drift(loaded, cur))
    # a loaded sketch still merges
    assert loaded.merge(loaded).features["v"].sketch.n == 2 * f.sketch.n


def test_exact_profiles_keep_format_1_and_old_files_load(tmp_path, rng):
    frame = _messy(rng)
    p = ReferenceProfile.from_frame(frame)
    with np.load(io.BytesIO(p.to_bytes())) as npz:
        assert json.loads(str(npz["meta"][()]))["format"] == PROFILE_FORMAT
    # a file as dethrone wrote it before merging existed: no cap, k or sketch keys
    arrays, meta = (
        {},
        {
            "format": 1,
            "n_rows": p.n_rows,
            "columns": list(p.columns),
            "psi_bins": p.psi_bins,
            "created_at": "2026-01-01T00:00:00+00:00",
            "features": [],
        },
    )
    for i, (name, f) in enumerate(p.features.items()):
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
    with open(tmp_path / "old.npz", "wb") as fh:
        np.savez_compressed(fh, **arrays)
    old = ReferenceProfile.load(tmp_path / "old.npz")
    _assert_same_profile(old, p)
    _same_report(detect_drift(old, frame), detect_drift(p, frame))


def test_load_of_a_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="not a dethrone reference profile"):
        ReferenceProfile.load(tmp_path / "absent.npz")
