"""Failed predictions are logged with a null prediction on their arm (SQLite) and counted;
the client's answer stays as it was (422 / 500 served, nothing for a shadow)."""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from dethrone.store.export import joined_predictions
from dethrone_router.gateway.models import LoadedModel
from tests.api.test_serving import FEATURES, ROWS, FakeSource, _fit


def _broken(exc: Exception) -> LoadedModel:
    def predict(frame):
        raise exc

    return LoadedModel(predict=predict, features=FEATURES)


@pytest.fixture
def source(diamonds):
    src = FakeSource(
        {
            "1": _fit(diamonds, "regression")[1],
            "7": _broken(RuntimeError("model blew up")),
        }
    )
    src.aliases["champion"] = "1"
    return src


@pytest.fixture
def gateway(make_app, settings, source):
    app = make_app(
        settings.replace(serving_batch_window_ms=0, log_flush_seconds=0.05), model_source=source
    )
    app.config["TESTING"] = True
    app.extensions["dethrone_serving"].watcher.refresh()
    yield app
    app.extensions["dethrone_serving"].writer.close()


def _logged(app) -> pd.DataFrame:
    assert app.extensions["dethrone_serving"].writer.flush(timeout=10)
    log = joined_predictions(app.extensions["dethrone_router"].engine)
    return log.sort_values(["request_id", "row", "arm"]).reset_index(drop=True)


def _failures(client) -> dict[str, float]:
    out = {}
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line.startswith("dethrone_prediction_failures_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split("{", 1)[1].rstrip("}")] = float(value)
    return out


def test_a_served_prediction_the_model_rejects_is_a_422_and_a_null_row(gateway):
    client = gateway.test_client()
    rows = [{**ROWS[0], "carat": None}, ROWS[1]]  # NaN: LinearRegression refuses it
    resp = client.post("/predict", json={"rows": rows}, headers={"X-Request-ID": "bad-1"})
    assert resp.status_code == 422 and resp.json["error"]["code"] == "model_rejected_input"
    ok = client.post("/predict", json={"rows": ROWS}, headers={"X-Request-ID": "ok-1"})
    assert ok.status_code == 200
    log = _logged(gateway)
    failed = log[log["request_id"] == "bad-1"]
    assert failed["row"].tolist() == [0, 1] and failed["prediction"].isna().all()
    assert (failed["arm"] == "champion").all() and failed["served"].all()
    assert (failed["model_version"] == "1").all() and failed["experiment_id"].notna().all()
    assert failed["latency_ms"].gt(0).all() and failed["features_json"].notna().all()
    good = log[log["request_id"] == "ok-1"]
    assert good["prediction"].notna().all()
    assert _failures(client) == {'arm="champion",kind="rejected",model_version="1"': 1.0}


def test_a_served_prediction_that_errors_is_a_500_and_a_null_row(gateway, source):
    source.aliases["challenger"] = "7"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    client = gateway.test_client()
    client.post("/traffic", json={"mode": "ab", "a": 0.0, "salt": "s"})  # all to the challenger
    resp = client.post("/predict", json={"rows": ROWS}, headers={"X-Request-ID": "boom"})
    assert resp.status_code == 500
    log = _logged(gateway)
    assert log["request_id"].tolist() == ["boom", "boom"]
    assert (log["arm"] == "challenger").all() and (log["model_version"] == "7").all()
    assert log["prediction"].isna().all() and log["served"].all()
    assert (log["challenger_version"] == "7").all() and (log["salt"] == "s:v7").all()
    assert _failures(client) == {'arm="challenger",kind="error",model_version="7"': 1.0}


def test_shadow_failures_and_drops_are_null_rows_of_the_challenger(gateway, source):
    source.aliases["challenger"] = "7"
    sv = gateway.extensions["dethrone_serving"]
    sv.watcher.refresh()
    client = gateway.test_client()
    client.post("/traffic", json={"mode": "shadow"})
    resp = client.post("/predict", json={"rows": ROWS}, headers={"X-Request-ID": "sh-1"})
    assert resp.status_code == 200 and resp.json["arm"] == "champion"
    # a full shadow pool: the next shadow scoring is dropped
    sv.shadow_slots = threading.BoundedSemaphore(1)
    sv.shadow_slots.acquire()
    resp = client.post("/predict", json={"rows": ROWS[:1]}, headers={"X-Request-ID": "sh-2"})
    assert resp.status_code == 200 and resp.json["arm"] == "champion"
    sv.shadow_slots.release()
    sv.shadow_pool.shutdown(wait=True)
    log = _logged(gateway)
    shadow = log[log["arm"] == "challenger"]
    assert shadow[["request_id", "row"]].values.tolist() == [["sh-1", 0], ["sh-1", 1], ["sh-2", 0]]
    assert shadow["prediction"].isna().all() and not shadow["served"].any()
    assert shadow["latency_ms"].isna().tolist() == [False, False, True]  # dropped: not scored
    served = log[log["arm"] == "champion"]
    assert len(served) == 3 and served["prediction"].notna().all()
    assert _failures(client) == {
        'arm="challenger",kind="shadow_error",model_version="7"': 1.0,
        'arm="challenger",kind="shadow_dropped",model_version="7"': 1.0,
    }
