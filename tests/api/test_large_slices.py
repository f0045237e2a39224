"""Huge slices: streamed in pieces with bounded memory, limited per worker, read token."""

from __future__ import annotations

import io
import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest

import dethrone_router.api.data as data_module

ALL = ["carat", "cut", "color", "clarity", "depth", "table", "price", "x", "y", "z"]


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(data_module, "CHUNK_ROWS", 1000)


@pytest.mark.parametrize("path", ["/get_data", "/ab_data"])
def test_streamed_slice_equals_the_one_piece_slice(app, client, small_chunks, path):
    client.post("/traffic", json={"data_size": 3500, "a": 0.3})
    streamed = client.get(path + "?seed=11").data
    slicer = app.extensions["dethrone_router"].slicer
    sl = slicer.draw(3500, {}, np.random.default_rng(11))
    # Without drift the pieces consume no randomness: the bytes must be identical.
    assert streamed == (sl.ab_json(0.3) if path == "/ab_data" else sl.split_json())


@pytest.mark.parametrize("path", ["/get_data", "/ab_data"])
def test_streamed_drifted_slice_is_valid_and_reproducible(client, small_chunks, path):
    client.post(
        "/traffic",
        json={
            "data_size": 2500,
            "a": 0.6,
            "drift_cols": ALL,
            "drift": {"depth": {"kind": "missing", "intensity": 0.5}},
        },
    )
    first, again = client.get(path + "?seed=5").data, client.get(path + "?seed=5").data
    assert first == again
    body = json.loads(first)
    parts = [body["a_data"], body["b_data"]] if path == "/ab_data" else [body]
    frames = [pd.read_json(io.StringIO(json.dumps(p)), orient="split") for p in parts]
    assert sum(len(f) for f in frames) == 2500 and all(list(f.columns) == ALL for f in frames)
    if path == "/ab_data":
        assert len(frames[0]) == 1500
    assert 0.3 < pd.concat(frames)["depth"].isna().mean() < 0.7


def test_concurrent_large_slices_get_429_with_retry_after(make_app, settings, small_chunks):
    app = make_app(settings.replace(router_large_slice_rows=2000, router_max_large_slices=1))
    client = app.test_client()
    client.post("/traffic", json={"data_size": 5000})
    first = client.get("/get_data", buffered=False)
    assert first.status_code == 200
    chunks = iter(first.response)
    next(chunks)  # streaming has begun and holds the worker's only slot
    busy = client.get("/get_data")
    assert busy.status_code == 429 and int(busy.headers["Retry-After"]) >= 1
    assert busy.get_json()["error"]["field"] == "data_size"
    assert client.get("/traffic").status_code == 200  # small requests are not limited
    first.close()
    assert client.get("/ab_data").status_code == 200
    client.post("/traffic", json={"data_size": 2000})  # not large: never limited
    held = client.get("/get_data", buffered=False)
    assert client.get("/get_data").status_code == 200
    held.close()


@pytest.mark.slow
def test_memory_per_request_is_bounded(make_app, settings):
    """Peak traced memory of a 200,000-row slice with every column drifted; one piece
    took about 340 MiB (it grows with data_size), the stream stays near one chunk."""
    app = make_app(settings.replace(router_max_data_size=1_000_000))
    client = app.test_client()
    client.post("/traffic", json={"data_size": 200_000, "drift_cols": ALL})
    tracemalloc.start()
    try:
        resp = client.get("/get_data?seed=1", buffered=False)
        size = sum(len(chunk) for chunk in resp.response)
        resp.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 15_000_000
    assert peak < 120 * 2**20, f"peak {peak / 2**20:.0f} MiB"


@pytest.fixture
def read_token_client(make_app, settings):
    app = make_app(settings.replace(router_token="write-tok", router_read_token="read-tok"))
    return app.test_client()


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/traffic"),
        ("get", "/traffic/history"),
        ("get", "/get_data"),
        ("post", "/get_data"),
        ("get", "/ab_data"),
        ("post", "/ab_data"),
    ],
)
def test_read_token_guards_reads(read_token_client, method, path):
    call = getattr(read_token_client, method)
    refused = call(path)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"]
    assert refused.get_json()["error"]["field"] == "Authorization"
    assert call(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    for token in ("read-tok", "write-tok"):
        assert call(path, headers={"Authorization": f"Bearer {token}"}).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/metrics", "/openapi.json"])
def test_probes_stay_open_with_a_read_token(read_token_client, path):
    assert read_token_client.get(path).status_code == 200


def test_read_token_does_not_allow_changes(read_token_client):
    resp = read_token_client.post(
        "/traffic", json={"a": 0.2}, headers={"Authorization": "Bearer read-tok"}
    )
    assert resp.status_code == 401
