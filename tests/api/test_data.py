"""/get_data and /ab_data: seed shapes, drift, reproducibility, limits."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest


def _split(resp) -> pd.DataFrame:
    return pd.read_json(io.BytesIO(resp.data), orient="split")


@pytest.mark.parametrize("method", ["get", "post"])
def test_get_data_is_split_json_of_real_rows(client, diamonds, method):
    client.post("/traffic", json={"data_size": 700})
    resp = getattr(client, method)("/get_data")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    body = json.loads(resp.data)
    assert list(body) == ["columns", "index", "data"]
    assert body["columns"] == list(diamonds.columns)
    assert len(body["index"]) == len(body["data"]) == 700
    assert len(set(body["index"])) == 700  # without replacement
    frame = _split(resp)
    original = diamonds.loc[frame.index]
    for col in diamonds.columns:
        if isinstance(diamonds[col].dtype, pd.CategoricalDtype):
            assert (frame[col] == original[col].astype(str)).all(), col
        else:
            assert np.allclose(frame[col], original[col]), col


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("a,n_a", [(0.3, 300), (0.5, 500), (0.0, 0), (1.0, 1000)])
def test_ab_data_splits_one_slice_a_to_b(client, method, a, n_a):
    client.post("/traffic", json={"a": a, "data_size": 1000})
    resp = getattr(client, method)("/ab_data?seed=11")
    assert resp.status_code == 200
    body = json.loads(resp.data)
    assert list(body) == ["a_data", "b_data"]
    a_idx, b_idx = body["a_data"]["index"], body["b_data"]["index"]
    assert (len(a_idx), len(b_idx)) == (n_a, 1000 - n_a)
    assert len(body["a_data"]["data"]) == n_a and len(body["b_data"]["data"]) == 1000 - n_a
    whole = json.loads(client.get("/get_data?seed=11").data)
    # One slice: A and B together are exactly /get_data's rows for the same seed.
    assert a_idx + b_idx == whole["index"]
    assert body["a_data"]["data"] + body["b_data"]["data"] == whole["data"]


def test_seeded_requests_are_byte_identical(client):
    client.post("/traffic", json={"data_size": 2000, "drift_cols": ["carat", "color"]})
    first = client.get("/get_data?seed=123")
    second = client.post("/get_data?seed=123")
    assert first.data == second.data
    assert first.headers["X-Dethrone-Seed"] == "123"
    assert first.headers["X-Dethrone-Config-Version"] == "1"
    assert client.get("/get_data?seed=124").data != first.data
    assert client.get("/ab_data?seed=5").data == client.get("/ab_data?seed=5").data


def test_config_seed_and_fresh_seed(client):
    client.post("/traffic", json={"data_size": 50, "seed": 99})
    resp = client.get("/get_data")
    assert resp.headers["X-Dethrone-Seed"] == "99"
    assert resp.data == client.get("/get_data").data
    assert client.get("/get_data?seed=98").headers["X-Dethrone-Seed"] == "98"
    client.post("/traffic", json={"seed": None})
    one, two = client.get("/get_data"), client.get("/get_data")
    assert one.headers["X-Dethrone-Seed"] != two.headers["X-Dethrone-Seed"]
    # The reported seed redraws the exact slice.
    again = client.get(f"/get_data?seed={one.headers['X-Dethrone-Seed']}")
    assert again.data == one.data


def test_seed_drift_scales_numbers_and_redraws_categories(client, diamonds):
    client.post("/traffic", json={"data_size": 5000, "drift_cols": ["carat", "color"]})
    frame = _split(client.get("/get_data?seed=3"))
    original = diamonds.loc[frame.index]
    ratio = frame["carat"].to_numpy() / original["carat"].to_numpy()
    changed = ~np.isclose(ratio, 1.0)
    assert 0.45 < changed.mean() < 0.55
    assert ratio.min() >= 0.1 - 1e-9 and ratio.max() <= 2.0 + 1e-9
    shares = frame["color"].value_counts(normalize=True)
    assert set(shares.index) == set(diamonds["color"].cat.categories)
    assert shares.max() - shares.min() < 0.05  # uniform redraw, unlike the data's mix
    assert np.allclose(frame["depth"], original["depth"])


def test_drift_kinds_shift_missing_and_label_shift(client, diamonds):
    client.post(
        "/traffic",
        json={
            "data_size": 5000,
            "drift_cols": ["depth", "cut", "price"],
            "drift": {
                "depth": {"kind": "shift", "intensity": 2},
                "cut": {"kind": "missing", "intensity": 0.3},
                "price": {"kind": "scale", "intensity": 1.0},
            },
        },
    )
    frame = _split(client.get("/get_data?seed=4"))
    original = diamonds.loc[frame.index]
    delta = frame["depth"].to_numpy() - original["depth"].to_numpy()
    assert np.allclose(delta, delta[0]) and delta[0] == pytest.approx(
        2 * original["depth"].std(ddof=0), rel=1e-6
    )
    assert 0.27 < frame["cut"].isna().mean() < 0.33
    # Drift on the target is label shift: every price is rescaled.
    assert (~np.isclose(frame["price"], original["price"])).mean() > 0.99


def test_data_size_beyond_the_data_set_draws_with_replacement(make_app, settings, diamonds):
    client = make_app(settings.replace(router_max_data_size=200_000)).test_client()
    client.post("/traffic", json={"data_size": 60_000})
    body = json.loads(client.get("/get_data?seed=1").data)
    assert len(body["index"]) == 60_000
    assert len(set(body["index"])) < len(diamonds)


def test_stored_config_that_no_longer_fits_answers_503(make_app, settings, client):
    client.post("/traffic", json={"data_size": 5000})
    smaller = make_app(settings.replace(router_max_data_size=1000)).test_client()
    resp = smaller.get("/get_data")
    assert resp.status_code == 503
    assert resp.get_json()["error"]["field"] == "data_size"
    assert smaller.get("/health").status_code == 503
    assert smaller.post("/traffic", json={"data_size": 1000}).status_code == 200
    assert smaller.get("/get_data").status_code == 200
