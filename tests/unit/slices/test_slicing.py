"""Slicer: split JSON equal to pandas', reproducible, with and without replacement."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from dethrone.slices.injection import DriftSpec
from dethrone.slices.slicing import Slicer, ab_sizes


@pytest.fixture(scope="module")
def slicer(diamonds) -> Slicer:
    return Slicer(diamonds)


def test_split_json_equals_pandas_to_json(slicer, rng):
    sl = slicer.draw(2000, None, rng)
    ours = json.loads(sl.split_json())
    theirs = json.loads(slicer.frame_of(sl.index).to_json(orient="split", double_precision=15))
    assert ours == theirs


def test_drifted_slice_reads_back_with_pandas(slicer, diamonds):
    sl = slicer.draw(
        1000,
        {"carat": None, "color": None, "cut": DriftSpec("missing", 0.5)},
        np.random.default_rng(1),
    )
    back = pd.read_json(io.BytesIO(sl.split_json()), orient="split")
    assert list(back.columns) == list(diamonds.columns)
    assert list(back.index) == list(sl.index)
    assert back["cut"].isna().any() and not back["clarity"].isna().any()
    assert np.allclose(back["price"], diamonds["price"].to_numpy()[sl.index])


def test_same_seed_same_bytes(slicer):
    drift = {"carat": None, "color": None}
    one = slicer.draw(3000, drift, np.random.default_rng(5)).ab_json(0.3)
    two = slicer.draw(3000, drift, np.random.default_rng(5)).ab_json(0.3)
    assert one == two
    assert one != slicer.draw(3000, drift, np.random.default_rng(6)).ab_json(0.3)


def test_sampling_with_and_without_replacement(slicer, rng):
    small = slicer.sample_index(slicer.n_rows, rng)
    assert sorted(small.tolist()) == list(range(slicer.n_rows))
    big = slicer.sample_index(slicer.n_rows + 10, rng)
    assert len(big) == slicer.n_rows + 10 and len(np.unique(big)) < len(big)


def test_empty_and_partial_slices(slicer, rng):
    sl = slicer.draw(10, None, rng)
    assert json.loads(sl.split_json(0, 0)) == {"columns": slicer.columns, "index": [], "data": []}
    body = json.loads(sl.ab_json(1.0))
    assert len(body["a_data"]["index"]) == 10 and body["b_data"]["data"] == []


@pytest.mark.parametrize(
    "n,a,expected",
    [
        (5000, 0.5, (2500, 2500)),
        (5, 0.5, (3, 2)),
        (10, 0.0, (0, 10)),
        (10, 1.0, (10, 0)),
        (3, 1 / 3, (1, 2)),
        (0, 0.5, (0, 0)),
    ],
)
def test_ab_sizes(n, a, expected):
    assert ab_sizes(n, a) == expected


def test_other_dtypes_and_missing_values():
    frame = pd.DataFrame(
        {
            "flag": [True, False, True],
            "n": [1, 2, 3],
            "x": [0.5, np.nan, np.inf],
            "s": pd.Categorical(["u", None, "v"]),
            "t": pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03"]),
        }
    )
    sl = Slicer(frame).draw(3, None, np.random.default_rng(0))
    rows = dict(zip(sl.index.tolist(), json.loads(sl.split_json())["data"], strict=True))
    assert rows[0][:4] == [True, 1, 0.5, "u"]
    assert rows[1][2] is None and rows[1][3] is None and rows[2][2] is None
    assert rows[2][4].startswith("2020-01-03")


def test_nullable_numbers_drift_and_encode():
    frame = pd.DataFrame(
        {
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
            "f": np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float16),
        }
    )
    sl = Slicer(frame).draw(4, {"n": None, "f": DriftSpec("shift", 1.0)}, np.random.default_rng(0))
    back = pd.read_json(io.BytesIO(sl.split_json()), orient="split")
    assert back["n"].isna().sum() == 1 and back["f"].notna().all()


@pytest.mark.parametrize(
    "specs",
    [
        {
            "carat": None,
            "color": None,
            "price": DriftSpec("shift", 0.5),
            "cut": DriftSpec("missing", 0.3),
            "depth": DriftSpec("missing", 0.2),
        },
        # Fresh numbers first, last and side by side; codes between them and next to them.
        {"z": None, "y": DriftSpec("shift", -1), "carat": DriftSpec("scale", 1.0)},
        {"price": DriftSpec("missing", 0.5), "clarity": None, "table": None},
        {"color": None, "cut": DriftSpec("missing", 0.5), "clarity": None},
        {"z": DriftSpec("missing", 0.4)},
        {
            "cut": None,
            "carat": None,
            "color": None,
            "clarity": None,
            "depth": None,
            "table": None,
            "price": None,
            "x": None,
            "y": None,
            "z": None,
        },
    ],
)
def test_slicer_drift_equals_apply_drift(slicer, specs):
    """The slicer's array fast path draws exactly what the library's apply_drift draws,
    whatever the layout of fresh and coded pieces the drifted columns lead to."""
    from dethrone.slices.injection import apply_drift

    sl = slicer.draw(1500, specs, np.random.default_rng(9))
    rng = np.random.default_rng(9)
    index = slicer.sample_index(1500, rng)
    expected = apply_drift(slicer.frame_of(index), specs, rng)
    back = pd.read_json(io.BytesIO(sl.split_json()), orient="split")
    assert list(back.index) == list(index)
    halves = json.loads(sl.ab_json(0.3))
    assert (
        halves["a_data"]["data"] + halves["b_data"]["data"] == json.loads(sl.split_json())["data"]
    )
    for col in expected.columns:
        if isinstance(expected[col].dtype, pd.CategoricalDtype):
            assert (
                back[col].fillna("<na>").tolist()
                == expected[col].astype(object).fillna("<na>").tolist()
            ), col
        else:
            assert np.allclose(back[col], expected[col], equal_nan=True), col


def test_kind_that_does_not_fit_is_refused(slicer, rng):
    with pytest.raises(ValueError, match="does not apply"):
        slicer.draw(10, {"cut": DriftSpec("shift")}, rng)


def test_one_drifted_column_frame():
    frame = pd.DataFrame({"x": [0.1, 0.2, 0.3]})
    sl = Slicer(frame).draw(3, {"x": DriftSpec("shift", 1.0)}, np.random.default_rng(0))
    body = json.loads(sl.ab_json(0.5))
    rows = body["a_data"]["data"] + body["b_data"]["data"]
    assert all(len(r) == 1 for r in rows) and len(rows) == 3
    assert json.loads(sl.split_json(1, 1))["data"] == []
