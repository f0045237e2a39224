"""Every invalid config is refused with 400/415 naming field and rule, and changes nothing."""

from __future__ import annotations

import json

import pytest

from dethrone.settings import Settings

MAX = 100_000

# (id, raw body, content type, status, field, words the message must contain)
PROBES = [
    ("unknown-key", {"colour": 1}, None, 400, "colour", "unknown key"),
    ("unknown-key-next-to-valid", {"a": 0.5, "shards": 2}, None, 400, "shards", "unknown key"),
    ("a-above-1", {"a": 1.5}, None, 400, "a", "in [0, 1]"),
    ("a-below-0", {"a": -0.1}, None, 400, "a", "in [0, 1]"),
    ("b-above-1", {"b": 2}, None, 400, "b", "in [0, 1]"),
    ("a-overflows-to-inf", '{"a": 1e400}', None, 400, "a", "in [0, 1]"),
    ("sum-not-1", {"a": 0.3, "b": 0.3}, None, 400, "b", "a + b must equal 1"),
    ("sum-off-by-1e-8", {"a": 0.5, "b": 0.5 + 1e-8}, None, 400, "b", "a + b must equal 1"),
    ("a-bool", {"a": True}, None, 400, "a", "must be a number"),
    ("a-string", {"a": "0.5"}, None, 400, "a", "must be a number"),
    ("a-null", {"a": None}, None, 400, "a", "must be a number"),
    ("b-list", {"a": 0.5, "b": [0.5]}, None, 400, "b", "must be a number"),
    ("size-bool", {"data_size": True}, None, 400, "data_size", "must be an integer"),
    ("size-string", {"data_size": "5000"}, None, 400, "data_size", "must be an integer"),
    ("size-fraction", {"data_size": 5000.5}, None, 400, "data_size", "must be an integer"),
    ("size-float", {"data_size": 100.0}, None, 400, "data_size", "must be an integer"),
    ("size-negative", {"data_size": -1}, None, 400, "data_size", f"in [1, {MAX}]"),
    ("size-zero", {"data_size": 0}, None, 400, "data_size", f"in [1, {MAX}]"),
    ("size-too-large", {"data_size": MAX + 1}, None, 400, "data_size", f"in [1, {MAX}]"),
    ("size-huge", {"data_size": 10**40}, None, 400, "data_size", f"in [1, {MAX}]"),
    (
        "cols-unknown",
        {"drift_cols": ["carat", "weight"]},
        None,
        400,
        "drift_cols",
        "unknown column 'weight'",
    ),
    ("cols-string", {"drift_cols": "carat"}, None, 400, "drift_cols", "must be a list"),
    ("cols-object", {"drift_cols": {"carat": 1}}, None, 400, "drift_cols", "must be a list"),
    ("cols-int-item", {"drift_cols": [1]}, None, 400, "drift_cols", "strings only"),
    ("cols-null-item", {"drift_cols": [None]}, None, 400, "drift_cols", "strings only"),
    ("cols-nested", {"drift_cols": [["carat"]]}, None, 400, "drift_cols", "strings only"),
    ("cols-duplicate", {"drift_cols": ["carat", "carat"]}, None, 400, "drift_cols", "twice"),
    (
        "kind-unknown",
        {"drift_cols": ["carat"], "drift": {"carat": {"kind": "explode"}}},
        None,
        400,
        "drift.carat.kind",
        "unknown drift kind",
    ),
    (
        "kind-missing",
        {"drift_cols": ["carat"], "drift": {"carat": {"intensity": 0.5}}},
        None,
        400,
        "drift.carat.kind",
        "unknown drift kind",
    ),
    (
        "kind-mismatch-numeric",
        {"drift_cols": ["carat"], "drift": {"carat": {"kind": "redraw"}}},
        None,
        400,
        "drift.carat.kind",
        "does not fit",
    ),
    (
        "kind-mismatch-categorical",
        {"drift_cols": ["cut"], "drift": {"cut": {"kind": "shift"}}},
        None,
        400,
        "drift.cut.kind",
        "does not fit",
    ),
    (
        "intensity-above",
        {"drift_cols": ["carat"], "drift": {"carat": {"kind": "scale", "intensity": 1.5}}},
        None,
        400,
        "drift.carat.intensity",
        "must be in [0, 1]",
    ),
    (
        "intensity-shift-range",
        {"drift_cols": ["price"], "drift": {"price": {"kind": "shift", "intensity": -11}}},
        None,
        400,
        "drift.price.intensity",
        "must be in [-10, 10]",
    ),
    (
        "intensity-string",
        {"drift_cols": ["cut"], "drift": {"cut": {"kind": "missing", "intensity": "half"}}},
        None,
        400,
        "drift.cut.intensity",
        "must be a number",
    ),
    (
        "spec-extra-key",
        {"drift_cols": ["carat"], "drift": {"carat": {"kind": "scale", "factor": 3}}},
        None,
        400,
        "drift.carat.factor",
        "unknown key",
    ),
    (
        "spec-not-listed",
        {"drift": {"price": {"kind": "scale"}}},
        None,
        400,
        "drift.price",
        "not in drift_cols",
    ),
    (
        "spec-not-object",
        {"drift_cols": ["carat"], "drift": {"carat": "scale"}},
        None,
        400,
        "drift.carat",
        "must be an object",
    ),
    ("drift-list", {"drift": ["carat"]}, None, 400, "drift", "must be an object"),
    ("seed-negative", {"seed": -1}, None, 400, "seed", "in [0, 2**64 - 1]"),
    ("seed-too-big", {"seed": 2**64}, None, 400, "seed", "in [0, 2**64 - 1]"),
    ("seed-float", {"seed": 1.5}, None, 400, "seed", "must be an integer"),
    ("seed-string", {"seed": "42"}, None, 400, "seed", "must be an integer"),
    ("version-string", {"a": 0.5, "version": "1"}, None, 400, "version", "non-negative integer"),
    ("json-null", "null", None, 400, None, "got null"),
    ("json-array", "[]", None, 400, None, "got list"),
    ("json-array-of-config", '[{"a": 0.5}]', None, 400, None, "got list"),
    ("json-number", "0.5", None, 400, None, "got float"),
    ("json-invalid", '{"a": 0.5', None, 400, None, "not valid JSON"),
    ("json-nan", '{"a": NaN}', None, 400, None, "not valid JSON"),
    ("json-infinity", '{"a": Infinity}', None, 400, None, "not valid JSON"),
    ("json-not-utf8", b'{"a": "\xff"}', None, 400, None, "not valid JSON"),
    ("body-empty", "", None, 400, None, "empty"),
    ("body-whitespace", "  \n", None, 400, None, "empty"),
    ("object-empty", "{}", None, 400, None, "sets nothing"),
    ("type-text", '{"a": 0.5}', "text/plain", 415, "Content-Type", "application/json"),
    (
        "type-form",
        "a=0.5",
        "application/x-www-form-urlencoded",
        415,
        "Content-Type",
        "application/json",
    ),
    ("type-missing", '{"a": 0.5}', "", 415, "Content-Type", "application/json"),
]


@pytest.fixture(scope="module")
def probe_client(tmp_path_factory):
    """One app for all probes (each probe checks it changed nothing)."""
    from dethrone_router import create_app

    settings = Settings.from_env(
        {}, router_data_dir=str(tmp_path_factory.mktemp("probe")), router_max_data_size=MAX
    )
    client = create_app(settings).test_client()
    # A known, non-default config the probes must leave alone; small slices keep it fast.
    ok = client.post("/traffic", json={"a": 0.4, "data_size": 300, "drift_cols": ["carat"]})
    assert ok.status_code == 200
    return client


@pytest.mark.parametrize("name,body,ctype,status,field,words", PROBES, ids=[p[0] for p in PROBES])
def test_probe_is_refused_and_changes_nothing(
    probe_client, name, body, ctype, status, field, words
):
    before = probe_client.get("/traffic").get_json()
    history = probe_client.get("/traffic/history").get_json()
    raw = json.dumps(body) if isinstance(body, dict) else body
    headers = {} if ctype == "" else {"Content-Type": ctype or "application/json"}
    resp = probe_client.post("/traffic", data=raw, headers=headers)
    assert resp.status_code == status, resp.get_data(as_text=True)
    error = resp.get_json()["error"]
    assert error["field"] == field
    assert words in error["message"]
    assert error["status"] == status and error["code"]
    assert probe_client.get("/traffic").get_json() == before
    assert probe_client.get("/traffic/history").get_json() == history
    for path in ("/get_data", "/ab_data"):
        for method in (probe_client.get, probe_client.post):
            assert method(path).status_code == 200


@pytest.mark.parametrize("seed", ["-1", "abc", "1.5", "", str(2**64), "1e3"])
def test_bad_seed_query_is_refused(probe_client, seed):
    resp = probe_client.get(f"/get_data?seed={seed}")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == "seed"
