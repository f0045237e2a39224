"""The prediction gateway in-process, with a fake model source (real scikit-learn models)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from dethrone_router.gateway.models import Feature, LoadedModel

FEATURES = (Feature("carat", "number"), Feature("depth", "number"), Feature("cut", "string"))


def _fit(diamonds: pd.DataFrame, kind: str, scale: float = 1.0):
    X = diamonds[["carat", "depth"]].head(400).to_numpy()
    if kind == "regression":
        model = LinearRegression().fit(X, diamonds["price"].head(400).to_numpy() * scale)
    else:
        model = LogisticRegression(max_iter=500).fit(
            X, (diamonds["price"].head(400) > 2000).map({True: "high", False: "low"})
        )

    def cols(frame):
        return frame[["carat", "depth"]].to_numpy()

    return model, LoadedModel(
        predict=lambda f: model.predict(cols(f)),
        predict_proba=(lambda f: model.predict_proba(cols(f))) if kind != "regression" else None,
        features=FEATURES,
        classes=tuple(model.classes_.tolist()) if kind != "regression" else None,
    )


class FakeSource:
    """Aliases and versions in a dict; ``down`` makes every call fail like a dead server."""

    def __init__(self, versions: dict[str, LoadedModel]) -> None:
        self.versions = versions
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.down = False
        self.loads: list[str] = []

    def ping(self) -> None:
        if self.down:
            raise ConnectionError("registry down")

    def lookup(self, alias):
        version = self.aliases.get(alias)
        return None if version is None else (version, self.tags.get(version, {}))

    def load(self, version):
        self.loads.append(version)
        return self.versions[version]


@pytest.fixture
def models(diamonds):
    reg1, loaded1 = _fit(diamonds, "regression")
    reg2, loaded2 = _fit(diamonds, "regression", scale=2.0)
    clf, loaded3 = _fit(diamonds, "classification")
    return {"1": (reg1, loaded1), "2": (reg2, loaded2), "3": (clf, loaded3)}


@pytest.fixture
def source(models):
    src = FakeSource({v: m[1] for v, m in models.items()})
    src.aliases["champion"] = "1"
    return src


@pytest.fixture
def gateway(make_app, settings, source):
    app = make_app(settings.replace(serving_batch_window_ms=0), model_source=source)
    app.config["TESTING"] = True
    app.extensions["dethrone_serving"].watcher.refresh()
    return app


@pytest.fixture
def gclient(gateway):
    return gateway.test_client()


ROWS = [{"carat": 0.5, "depth": 61.0, "cut": "Ideal"}, {"carat": 1.2, "depth": 62.5, "cut": "Good"}]


def _expected(model, rows):
    # The same column layout as the gateway's frame (BLAS results depend on it in the
    # last bit).
    return model.predict(pd.DataFrame(rows)[["carat", "depth"]].to_numpy()).tolist()


@pytest.mark.parametrize(
    "body",
    [
        {"dataframe_records": ROWS},
        {"rows": ROWS},
        {"instances": ROWS},
        {"inputs": {"carat": [0.5, 1.2], "depth": [61.0, 62.5], "cut": ["Ideal", "Good"]}},
        {
            "dataframe_split": {
                "columns": ["carat", "depth", "cut"],
                "data": [[0.5, 61.0, "Ideal"], [1.2, 62.5, "Good"]],
            }
        },
        {"instances": [[0.5, 61.0, "Ideal"], [1.2, 62.5, "Good"]]},
    ],
)
@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_every_mlflow_format_gives_the_models_own_predictions(gclient, models, body, path):
    resp = gclient.post(path, json=body)
    assert resp.status_code == 200, resp.json
    out = resp.json
    assert out["predictions"] == _expected(models["1"][0], ROWS)
    assert (out["model_version"], out["arm"]) == ("1", "champion")
    assert resp.headers["X-Request-ID"] == out["request_id"] and len(out["request_id"]) == 32


def test_client_request_id_is_kept_and_an_invalid_one_replaced(gclient):
    kept = gclient.post("/predict", json={"rows": ROWS}, headers={"X-Request-ID": "abc-123"})
    assert kept.json["request_id"] == "abc-123" == kept.headers["X-Request-ID"]
    bad = gclient.post("/predict", json={"rows": ROWS}, headers={"X-Request-ID": "a b\x01"})
    assert bad.json["request_id"] != "a b\x01" and len(bad.json["request_id"]) == 32


def test_classifier_labels_and_probabilities(gateway, gclient, source, models):
    source.aliases["champion"] = "3"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    out = gclient.post("/predict", json={"rows": ROWS, "probabilities": True}).json
    clf = models["3"][0]
    X = pd.DataFrame(ROWS)[["carat", "depth"]].to_numpy()
    assert out["predictions"] == clf.predict(X).tolist()
    assert out["classes"] == clf.classes_.tolist()
    assert out["probabilities"] == clf.predict_proba(X).tolist()
    no_proba = gclient.post("/predict", json={"rows": ROWS}).json
    assert "probabilities" not in no_proba


def test_regressor_has_no_probabilities(gclient):
    resp = gclient.post("/predict", json={"rows": ROWS, "probabilities": True})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "probabilities"


def _post_traffic(client, **cfg):
    resp = client.post("/traffic", json=cfg)
    assert resp.status_code == 200, resp.json
    return resp.json["traffic"]


def test_sticky_units_follow_the_split(gateway, gclient, source):
    source.aliases["challenger"] = "2"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    _post_traffic(gclient, a=0.7, salt="exp")
    arms = {}
    for unit in range(300):
        resp = gclient.post(
            "/predict", json={"rows": ROWS[:1]}, headers={"X-Dethrone-Unit": f"u{unit}"}
        )
        arms[unit] = resp.json["arm"]
    share = sum(a == "champion" for a in arms.values()) / len(arms)
    assert abs(share - 0.7) < 3 * np.sqrt(0.7 * 0.3 / 300)
    for unit in range(0, 300, 37):  # sticky: the same arm again
        resp = gclient.post(
            "/predict", json={"rows": ROWS}, headers={"X-Dethrone-Unit": f"u{unit}"}
        )
        assert resp.json["arm"] == arms[unit]
        assert resp.json["model_version"] == ("1" if arms[unit] == "champion" else "2")


def test_unit_column_routes_and_is_not_a_feature(gateway, gclient, source):
    source.aliases["challenger"] = "2"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    _post_traffic(gclient, a=0.5, unit_column="customer")
    rows = [{**r, "customer": "c-9"} for r in ROWS]
    arms = {gclient.post("/predict", json={"rows": rows}).json["arm"] for _ in range(5)}
    assert len(arms) == 1
    mixed = [{**ROWS[0], "customer": "c-1"}, {**ROWS[1], "customer": "c-2"}]
    resp = gclient.post("/predict", json={"rows": mixed})
    assert resp.status_code == 400 and resp.json["error"]["field"] == "customer"


@pytest.mark.parametrize("mode", ["champion", "shadow"])
def test_champion_and_shadow_modes_answer_with_the_champion(gateway, gclient, source, models, mode):
    source.aliases["challenger"] = "2"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    _post_traffic(gclient, a=0.0, mode=mode)  # a = 0 would send everything to the challenger
    for unit in range(10):
        out = gclient.post(
            "/predict", json={"rows": ROWS}, headers={"X-Dethrone-Unit": str(unit)}
        ).json
        assert (out["arm"], out["model_version"]) == ("champion", "1")
        assert out["predictions"] == _expected(models["1"][0], ROWS)
    sv = gateway.extensions["dethrone_serving"]
    sv.shadow_pool.shutdown(wait=True)
    metrics = gclient.get("/metrics").get_data(as_text=True)
    shadow_rows = 'dethrone_predictions_total{arm="challenger",model_version="2"} 20.0'
    assert (shadow_rows in metrics) == (mode == "shadow")


def test_rejected_challenger_gets_no_traffic(gateway, gclient, source):
    source.aliases["challenger"] = "2"
    source.tags["2"] = {"dethrone.decision.outcome": "keep"}
    sv = gateway.extensions["dethrone_serving"]
    sv.watcher.refresh()
    _post_traffic(gclient, a=0.0)
    out = gclient.post("/predict", json={"rows": ROWS}).json
    assert (out["arm"], out["model_version"]) == ("champion", "1")
    assert sv.watcher.status()["refused"] == ["2"] and "2" not in source.loads
    source.tags["2"] = {"dethrone.decision.outcome": "keep", "dethrone.decision.final": "false"}
    sv.watcher.refresh()
    assert gclient.post("/predict", json={"rows": ROWS}).json["arm"] == "challenger"


def test_hot_swap_keeps_the_old_model_for_requests_in_flight(gateway, source):
    sv = gateway.extensions["dethrone_serving"]
    held = sv.watcher.get("champion")
    source.aliases["champion"] = "2"
    sv.watcher.refresh()
    assert sv.watcher.get("champion").version == "2" and held.version == "1"
    metrics = gateway.test_client().get("/metrics").get_data(as_text=True)
    assert 'dethrone_model_info{alias="champion",version="2"} 1.0' in metrics
    assert 'dethrone_model_info{alias="champion",version="1"} 0.0' in metrics
    assert 'dethrone_model_reloads_total{alias="champion",outcome="loaded"} 2.0' in metrics
    frame = pd.DataFrame(ROWS)
    assert held.batcher.submit(frame)[0].tolist() == held.model.predict(frame).tolist()


def test_a_version_that_fails_to_load_keeps_the_old_one_and_backs_off(gateway, source):
    sv = gateway.extensions["dethrone_serving"]
    source.aliases["champion"] = "9"  # not loadable: KeyError in the fake source
    sv.watcher.refresh()
    sv.watcher.refresh()
    assert sv.watcher.get("champion").version == "1"
    assert source.loads.count("9") == 1  # the second check waited (backoff)
    assert sv.watcher.status()["failed_loads"] == {"9": 1}


def test_registry_down_keeps_serving_and_reports_degraded(gateway, gclient, source, models):
    source.down = True
    gateway.extensions["dethrone_serving"].watcher.refresh()
    out = gclient.post("/predict", json={"rows": ROWS}).json
    assert out["predictions"] == _expected(models["1"][0], ROWS)
    health = gclient.get("/health")
    assert health.status_code == 200 and health.json["status"] == "degraded"
    ready = gclient.get("/health/ready")
    assert ready.status_code == 200 and ready.json["status"] == "degraded"
    assert ready.json["models"] == {"champion": "1", "challenger": None}


def test_no_champion_is_503(make_app, settings, source):
    source.aliases.clear()
    app = make_app(settings, model_source=source)
    app.extensions["dethrone_serving"].watcher.refresh()
    client = app.test_client()
    resp = client.post("/predict", json={"rows": ROWS})
    assert resp.status_code == 503 and resp.json["error"]["code"] == "no_champion"
    assert client.get("/health/ready").status_code == 503
    assert client.get("/health/live").status_code == 200


BAD = [
    ("missing feature", {"rows": [{"carat": 0.5, "cut": "Ideal"}]}, 400, "depth"),
    ("unknown feature", {"rows": [{**ROWS[0], "colour": "D"}]}, 400, "colour"),
    ("wrong type", {"rows": [{**ROWS[0], "cut": 3}]}, 400, "cut"),
    ("bool for number", {"rows": [{**ROWS[0], "carat": True}]}, 400, "carat"),
    ("uncoercible", {"rows": [{**ROWS[0], "depth": "deep"}]}, 400, "depth"),
    ("empty batch", {"rows": []}, 400, "rows"),
    (
        "empty split",
        {"dataframe_split": {"columns": ["carat"], "data": []}},
        400,
        "dataframe_split",
    ),
    ("two formats", {"rows": ROWS, "instances": ROWS}, 400, "rows"),
    ("no format", {"probabilities": True}, 400, None),
    ("unknown key", {"rows": ROWS, "extra": 1}, 400, "extra"),
    ("row not object", {"rows": [ROWS[0], 5]}, 400, "rows"),
    (
        "ragged split",
        {"dataframe_split": {"columns": ["carat", "depth"], "data": [[1]]}},
        400,
        "dataframe_split.data[0]",
    ),
    ("too many rows", {"rows": ROWS * 3}, 413, "rows"),
    ("proba not bool", {"rows": ROWS, "probabilities": "yes"}, 400, "probabilities"),
]


@pytest.mark.parametrize(("name", "body", "status", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_field(make_app, settings, source, name, body, status, field):
    app = make_app(settings.replace(serving_max_rows=5), model_source=source)
    sv = app.extensions["dethrone_serving"]
    sv.watcher.refresh()
    client = app.test_client()
    before = (client.get("/traffic").json, sv.watcher.status()["models"])
    for path in ("/predict", "/invocations"):
        resp = client.post(path, json=body)
        assert resp.status_code == status, resp.json
        assert resp.json["error"]["field"] == field, resp.json
    assert (client.get("/traffic").json, sv.watcher.status()["models"]) == before


@pytest.mark.parametrize(
    ("data", "ctype", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b'{"rows": []}', "text/plain", 415),
        (b"[1, 2]", "application/json", 400),
        (b'{"rows": [{"carat": NaN}]}', "application/json", 400),
    ],
)
def test_bodies_that_are_not_json_objects(gclient, data, ctype, status):
    resp = gclient.post("/predict", data=data, content_type=ctype)
    assert resp.status_code == status and "error" in resp.json


def test_numeric_strings_are_coerced(gclient, models):
    rows = [{"carat": "0.5", "depth": "61", "cut": "Ideal"}]
    out = gclient.post("/predict", json={"rows": rows}).json
    assert out["predictions"] == _expected(models["1"][0], [{"carat": 0.5, "depth": 61.0}])


@pytest.mark.parametrize(
    ("cfg", "field"),
    [({"mode": "canary"}, "mode"), ({"salt": 5}, "salt"), ({"unit_column": ""}, "unit_column")],
)
def test_serving_config_is_validated(gclient, cfg, field):
    resp = gclient.post("/traffic", json=cfg)
    assert resp.status_code == 400 and resp.json["error"]["field"] == field


def test_dashboard_serving_queries_use_exported_metrics(gateway, gclient, source):
    import json
    import re
    from pathlib import Path

    source.aliases["challenger"] = "3"  # a classifier, so class counts exist too
    gateway.extensions["dethrone_serving"].watcher.refresh()
    for unit in range(20):
        resp = gclient.post("/predict", json={"rows": ROWS}, headers={"X-Dethrone-Unit": str(unit)})
        assert resp.status_code == 200
    # The log and feedback panels: a flushed log and one label.
    assert gateway.extensions["dethrone_serving"].writer.flush(timeout=10)
    assert (
        gclient.post(
            "/feedback", json={"request_id": resp.get_json()["request_id"], "row": 0, "label": 1.0}
        ).status_code
        == 200
    )
    text = gclient.get("/metrics").get_data(as_text=True)
    exported = set(re.findall(r"^(dethrone_[a-z_]+)", text, re.MULTILINE))
    board = json.loads(
        (Path(__file__).parents[2] / "grafana" / "dashboards" / "dethrone-router.json").read_text()
    )
    used = {
        m
        for p in board["panels"]
        for t in p["targets"]
        for m in re.findall(r"dethrone_[a-z_]+", t["expr"])
        if not m.startswith("dethrone_router_")
    }
    assert len(used) >= 8
    assert used <= exported, used - exported


@pytest.mark.parametrize(
    ("value", "code"), [(10**400, "range"), ("1e400", "range"), ("inf", "range"), ([1], "type")]
)
def test_extreme_numbers_are_400(gclient, value, code):
    resp = gclient.post("/predict", json={"rows": [{**ROWS[0], "carat": value}]})
    assert resp.status_code == 400 and resp.json["error"]["code"] == code
    assert resp.json["error"]["field"] == "carat"


def test_rows_the_model_rejects_are_422_and_do_not_fail_their_batch(gateway, gclient, models):
    # null is NaN for a number feature; this model (no imputer) refuses NaN.
    resp = gclient.post("/predict", json={"rows": [{**ROWS[0], "carat": None}]})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "model_rejected_input"
    batcher = gateway.extensions["dethrone_serving"].watcher.get("champion").batcher
    good, bad = pd.DataFrame(ROWS), pd.DataFrame([{**ROWS[0], "carat": np.nan}])
    from dethrone_router.gateway.batching import _Job

    jobs = [_Job(good, False), _Job(bad, False)]
    batcher._run(jobs)
    assert jobs[0].labels.tolist() == _expected(models["1"][0], ROWS)
    assert isinstance(jobs[1].error, ValueError) and jobs[1].labels is None
