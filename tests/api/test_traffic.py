"""GET/POST /traffic and /traffic/history on the Flask test client."""

from __future__ import annotations

import pytest

from dethrone_router import create_app


def test_defaults_are_the_seed_config(client):
    body = client.get("/traffic").get_json()
    assert {k: body[k] for k in ("a", "b", "data_size", "drift_cols")} == {
        "a": 0.5,
        "b": 0.5,
        "data_size": 5000,
        "drift_cols": [],
    }
    assert body["drift"] == {} and body["seed"] is None and body["version"] == 0


def test_post_answers_seed_shape_and_fills_b(client):
    resp = client.post("/traffic", json={"a": 0.3})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "updated"
    assert body["traffic"]["a"] == 0.3 and body["traffic"]["b"] == 0.7
    assert body["traffic"]["version"] == 1
    assert client.get("/traffic").get_json() == body["traffic"]


@pytest.mark.parametrize("a", [0.7, 0.1, 1 / 3, 0.0, 1.0])
def test_derived_b_is_tidy_and_sums_to_one(client, a):
    cfg = client.post("/traffic", json={"a": a}).get_json()["traffic"]
    assert abs(cfg["a"] + cfg["b"] - 1) <= 1e-9
    assert len(repr(cfg["b"])) <= 16


def test_partial_update_keeps_other_keys(client):
    client.post("/traffic", json={"data_size": 1234, "drift_cols": ["carat"]})
    cfg = client.post("/traffic", json={"b": 0.25}).get_json()["traffic"]
    assert (cfg["a"], cfg["b"], cfg["data_size"], cfg["drift_cols"]) == (
        0.75,
        0.25,
        1234,
        ["carat"],
    )


def test_drift_cols_without_drift_keeps_specs_of_listed_columns(client):
    client.post(
        "/traffic",
        json={
            "drift_cols": ["carat", "color"],
            "drift": {"carat": {"kind": "shift", "intensity": 2}, "color": {"kind": "missing"}},
        },
    )
    cfg = client.post("/traffic", json={"drift_cols": ["carat"]}).get_json()["traffic"]
    assert cfg["drift"] == {"carat": {"kind": "shift", "intensity": 2.0}}


def test_history_records_before_and_after(client):
    client.post("/traffic", json={"a": 0.2})
    client.post("/traffic", json={"data_size": 10})
    hist = client.get("/traffic/history").get_json()
    assert hist["version"] == 2
    assert [h["version"] for h in hist["history"]] == [1, 2]
    first, second = hist["history"]
    assert first["before"]["a"] == 0.5 and first["after"]["a"] == 0.2
    assert second["before"]["data_size"] == 5000 and second["after"]["data_size"] == 10
    assert first["at"].endswith("Z") and first["at"] <= second["at"]
    assert client.get("/traffic/history?limit=1").get_json()["history"] == [second]


SOURCE = "X-Dethrone-Source"


def test_history_keeps_the_source_header_of_each_change(client):
    by_dag = "live experiment live-v2-ab (run scheduled__2026-11-29T00:00:00+00:00): start"
    assert client.post("/traffic", json={"a": 0.2}, headers={SOURCE: by_dag}).status_code == 200
    client.post("/traffic", json={"a": 0.3})  # no header: source null, as before
    assert client.post("/traffic", json={"a": 0.4}, headers={SOURCE: "x" * 256}).status_code == 200
    hist = client.get("/traffic/history").get_json()["history"]
    assert [h["source"] for h in hist] == [by_dag, None, "x" * 256]
    # only a new key: the seed-era keys keep their values
    assert set(hist[0]) == {"version", "at", "before", "after", "source"}
    assert hist[0]["after"]["a"] == 0.2 and hist[0]["version"] == 1


@pytest.mark.parametrize("value", ["", "x" * 257, "bad\x01byte", "tab\tin", "del\x7f", "caf\u00e9"])
def test_invalid_source_header_is_400_naming_it_and_stores_nothing(client, value):
    resp = client.post("/traffic", json={"a": 0.2}, headers={SOURCE: value})
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["field"] == SOURCE and error["status"] == 400 and SOURCE in error["message"]
    assert client.get("/traffic").get_json()["version"] == 0
    assert client.get("/traffic/history").get_json()["history"] == []


def test_version_precondition(client):
    assert client.post("/traffic", json={"a": 0.4, "version": 0}).status_code == 200
    resp = client.post("/traffic", json={"a": 0.6, "version": 0})
    assert resp.status_code == 409
    assert resp.get_json()["error"]["field"] == "version"
    assert client.get("/traffic").get_json()["a"] == 0.4


def test_config_survives_a_new_app_on_the_same_store(make_app, settings, client):
    client.post("/traffic", json={"a": 0.1, "seed": 7})
    again = make_app(settings).test_client().get("/traffic").get_json()
    assert (again["a"], again["seed"], again["version"]) == (0.1, 7, 1)


@pytest.fixture
def token_client(make_app, settings):
    return make_app(settings.replace(router_token="s3cret")).test_client()


@pytest.mark.parametrize("header", [None, "Bearer wrong", "s3cret", "Bearer s3cret "])
def test_token_required_for_post(token_client, header):
    headers = {"Authorization": header} if header else {}
    resp = token_client.post("/traffic", json={"a": 0.2}, headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["error"]["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert token_client.get("/traffic").get_json()["a"] == 0.5


def test_token_accepted_and_reads_stay_open(token_client):
    resp = token_client.post(
        "/traffic", json={"a": 0.2}, headers={"Authorization": "Bearer s3cret"}
    )
    assert resp.status_code == 200
    assert token_client.get("/traffic").status_code == 200
    assert token_client.get("/get_data?seed=1").status_code == 200


def test_create_app_reads_settings_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ROUTER_DATA_DIR", str(tmp_path / "env-store"))
    monkeypatch.setenv("ROUTER_MAX_DATA_SIZE", "77")
    client = create_app().test_client()
    resp = client.post("/traffic", json={"data_size": 78})
    assert resp.status_code == 400 and "[1, 77]" in resp.get_json()["error"]["message"]
    assert (tmp_path / "env-store" / "router.sqlite3").exists()
