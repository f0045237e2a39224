"""Hostile request bodies and query strings: always a 400 in the one error shape."""

from __future__ import annotations

import json
import math

import pytest


def _error(resp, status=400):
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    error = resp.get_json()["error"]
    assert set(error) == {"code", "message", "field", "status"} and error["status"] == status
    return error


@pytest.mark.parametrize("depth", [17, 990, 5000, 30_000])
def test_deeply_nested_json_is_400(client, depth):
    body = '{"drift": ' + "[" * depth + "]" * depth + "}"
    assert len(body) < 64 * 1024
    error = _error(client.post("/traffic", data=body, content_type="application/json"))
    assert error["code"] == "too_deep"
    assert client.get("/traffic").get_json()["version"] == 0


@pytest.mark.parametrize("path", ["/feedback", "/predict", "/invocations"])
@pytest.mark.parametrize("depth", [17, 30_000])
def test_every_json_endpoint_refuses_deep_nesting(client, path, depth):
    # One body reader for all: deep nesting reached json's recursion limit here (a 500).
    body = "[" * depth + "]" * depth
    error = _error(client.post(path, data=body, content_type="application/json"))
    assert error["code"] == "too_deep" and error["field"] is None


def test_nesting_depth_ignores_brackets_in_strings():
    from dethrone_router.validation import nesting_depth

    assert nesting_depth(b'{"a": "[[[{{{\\"[[", "b": [[1]]}') == 3
    assert nesting_depth(b"1") == 0


@pytest.mark.parametrize(
    "limit",
    [
        "\u00b2",
        "\u0663",
        "\u0661\u0660",
        "\uff11",
        "1.0",
        "-1",
        "1e3",
        " 1",
        "0",
        "100001",
        "9" * 30,
    ],
)
def test_history_limit_ascii_digits_only(client, limit):
    assert _error(client.get("/traffic/history", query_string={"limit": limit}))["field"] == "limit"


@pytest.mark.parametrize(
    "body,field",
    [
        ('{"a": 0.2, "a": 0.7}', "a"),
        (
            '{"a": 0.3, "drift_cols": ["carat"], "drift": {"carat": {"kind": "shift", '
            '"kind": "scale"}}}',
            "kind",
        ),
    ],
)
def test_duplicate_keys_are_400(client, body, field):
    error = _error(client.post("/traffic", data=body, content_type="application/json"))
    assert error["code"] == "duplicate_key" and error["field"] == field
    assert client.get("/traffic").get_json()["version"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"a": -0.0},
        {"a": 1.0, "b": -0.0},
        {"drift_cols": ["carat"], "drift": {"carat": {"kind": "shift", "intensity": -0.0}}},
    ],
)
def test_negative_zero_is_stored_as_zero(client, body):
    resp = client.post("/traffic", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 200
    for raw in (
        resp.get_data(as_text=True),
        client.get("/traffic").get_data(as_text=True),
        client.get("/traffic/history").get_data(as_text=True),
    ):
        assert "-0.0" not in raw
    stored = client.get("/traffic").get_json()
    assert all(math.copysign(1, v) == 1 for v in (stored["a"], stored["b"]))
