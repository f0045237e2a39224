"""The prediction log and POST /feedback in-process (fake model source, SQLite file)."""

from __future__ import annotations

import pytest

from dethrone.store.export import joined_predictions
from tests.api.test_serving import FakeSource, _fit


@pytest.fixture
def source(diamonds):
    src = FakeSource(
        {
            "1": _fit(diamonds, "regression")[1],
            "2": _fit(diamonds, "regression", scale=2.0)[1],
            "3": _fit(diamonds, "classification")[1],
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


def _rows(n: int, start: float = 0.3) -> list[dict]:
    return [{"carat": start + i / 100, "depth": 61.0, "cut": "Ideal"} for i in range(n)]


def _flush(app) -> None:
    assert app.extensions["dethrone_serving"].writer.flush(timeout=10)


def _logged(app):
    return (
        joined_predictions(app.extensions["dethrone_router"].engine)
        .sort_values(["request_id", "row", "arm"])
        .reset_index(drop=True)
    )


def test_every_served_row_is_logged_as_the_client_saw_it(gateway):
    client = gateway.test_client()
    client.post("/traffic", json={"mode": "ab", "a": 0.5, "b": 0.5, "salt": "s1"})
    gateway.extensions["dethrone_serving"].watcher.source.aliases["challenger"] = "2"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    seen = []
    for i in range(12):
        body = client.post(
            "/predict",
            json={"rows": _rows(3, 0.3 + i / 10)},
            headers={"X-Dethrone-Unit": f"user-{i}"},
        ).get_json()
        seen += [
            (body["request_id"], r, body["arm"], body["model_version"], p)
            for r, p in enumerate(body["predictions"])
        ]
    _flush(gateway)
    log = _logged(gateway)
    assert sorted(seen) == [
        tuple(x)
        for x in log[["request_id", "row", "arm", "model_version", "prediction"]].itertuples(
            index=False
        )
    ]
    assert log["served"].all() and set(log["arm"]) == {"champion", "challenger"}
    assert set(log["experiment_id"]) == {"1/2/s1:v2"}
    assert set(log["unit"]) == {f"user-{i}" for i in range(12)}
    assert log["latency_ms"].gt(0).all() and log["features_json"].notna().all()


def test_shadow_predictions_are_logged_unserved_with_their_own_arm(gateway):
    client = gateway.test_client()
    sv = gateway.extensions["dethrone_serving"]
    sv.watcher.source.aliases["challenger"] = "2"
    sv.watcher.refresh()
    client.post("/traffic", json={"mode": "shadow"})
    body = client.post("/predict", json={"rows": _rows(4)}).get_json()
    sv.shadow_pool.shutdown(wait=True)
    _flush(gateway)
    log = _logged(gateway)
    assert len(log) == 8 and set(log["request_id"]) == {body["request_id"]}
    assert log.groupby("arm")["served"].all().to_dict() == {"challenger": False, "champion": True}
    shadow = log[log["arm"] == "challenger"]["prediction"].to_numpy()
    assert shadow == pytest.approx([2 * p for p in body["predictions"]])


def test_classifier_log_keeps_probabilities(gateway, source):
    source.aliases["champion"] = "3"
    gateway.extensions["dethrone_serving"].watcher.refresh()
    body = gateway.test_client().post("/predict", json={"rows": _rows(2, 1.5)}).get_json()
    assert "probabilities" not in body
    _flush(gateway)
    log = _logged(gateway)
    assert list(log["predicted_class"]) == body["predictions"]
    assert all(set(p) == {"high", "low"} for p in map(eval_json, log["prediction_json"]))


def eval_json(text: str):
    import json

    return json.loads(text)


def test_feedback_statuses_through_http(gateway):
    client = gateway.test_client()
    rid = client.post("/predict", json={"rows": _rows(2)}).get_json()["request_id"]
    _flush(gateway)
    one = {"request_id": rid, "row": 0, "label": 500.0}
    first = client.post("/feedback", json=one)
    assert first.status_code == 200 and first.get_json()["status"] == "stored"
    assert first.get_json()["arm"] == "champion"
    assert client.post("/feedback", json=one).get_json()["status"] == "duplicate"
    assert client.post("/feedback", json={**one, "label": 1.0}).status_code == 409
    assert (
        client.post("/feedback", json={**one, "label": 2.0, "overwrite": True}).get_json()["status"]
        == "overwritten"
    )
    assert client.post("/feedback", json={**one, "request_id": "nope"}).status_code == 404
    batch = client.post("/feedback", json=[{**one, "row": 1}, {**one, "row": 7}])
    assert batch.status_code == 207
    assert batch.get_json()["counts"]["stored"] == 1 and batch.get_json()["counts"]["unknown"] == 1
    log = _logged(gateway)
    assert list(log["label"]) == [2.0, 500.0]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'dethrone_feedback_total{arm="champion"} 3.0' in metrics
    assert 'dethrone_label_coverage{arm="champion"} 1.0' in metrics
    predicted = log.set_index("row")["prediction"]
    expected = (abs(predicted[0] - 2.0) + abs(predicted[1] - 500.0)) / 2
    live = [
        ln for ln in metrics.splitlines() if ln.startswith('dethrone_live_loss{arm="champion"}')
    ]
    assert float(live[0].split()[-1]) == pytest.approx(expected, rel=1e-9)
    assert "dethrone_log_rows_total 2.0" in metrics


def test_late_feedback_is_410(make_app, settings, source):
    app = make_app(
        settings.replace(feedback_max_age="1s", log_flush_seconds=0.05), model_source=source
    )
    app.extensions["dethrone_serving"].watcher.refresh()
    client = app.test_client()
    rid = client.post("/predict", json={"rows": _rows(1)}).get_json()["request_id"]
    _flush(app)
    # age the logged row by two seconds instead of waiting for them to pass
    from sqlalchemy import update

    from dethrone.store.schema import predictions

    with app.extensions["dethrone_router"].engine.begin() as conn:
        conn.execute(
            update(predictions)
            .where(predictions.c.request_id == rid)
            .values(ts=predictions.c.ts - 2.0)
        )
    late = client.post("/feedback", json={"request_id": rid, "row": 0, "label": 1})
    assert late.status_code == 410 and late.get_json()["status"] == "too_old"
    app.extensions["dethrone_serving"].writer.close()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"request_id": "r", "row": -1, "label": 1}, "row"),
        ({"request_id": "", "row": 0, "label": 1}, "request_id"),
        ({"request_id": "r", "row": 0, "label": True}, "label"),
        ({"request_id": "r", "row": 0}, "label"),
        ({"request_id": "r", "row": 0, "label": 1, "extra": 2}, "extra"),
        (
            [
                {"request_id": "r", "row": 0, "label": 1},
                {"request_id": "r", "row": "0", "label": 1},
            ],
            "[1].row",
        ),
        ({"items": [], "overwrite": True}, "items"),
        ({"items": [{"request_id": "r", "row": 0, "label": 1}], "overwrite": "yes"}, "overwrite"),
        (3, "body"),
    ],
)
def test_malformed_feedback_is_400_naming_the_field(gateway, body, field):
    resp = gateway.test_client().post("/feedback", json=body)
    assert resp.status_code == 400
    assert resp.get_json()["error"]["field"] == field
    assert resp.get_json()["error"]["code"] == "invalid_feedback"


def test_health_reports_the_log_and_warns_when_it_cannot_write(gateway):
    client = gateway.test_client()
    body = client.get("/health").get_json()
    assert body["log"]["ok"] is True and body["log"]["dropped_total"] == 0
    writer = gateway.extensions["dethrone_serving"].writer
    writer._last_error = ("database unavailable: test", 0.0)  # what a failed flush leaves
    body = client.get("/health").get_json()
    assert body["status"] == "degraded" and "prediction log not writing" in body["warnings"][0]
