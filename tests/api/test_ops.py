"""/health, /metrics, /openapi.json and the per-request log line."""

from __future__ import annotations

import json
import re


def test_health_ready(client):
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert body["checks"] == {"dataset": True, "store_writable": True, "config_valid": True}
    assert body["dataset"]["rows"] == 53_940 and body["dataset"]["target"] == "price"


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "")
    match = re.search(pattern + r" (\S+)$", text, re.MULTILINE)
    assert match, f"{name} {labels} missing"
    return float(match.group(1))


def test_metrics_count_requests_rows_and_show_config(client):
    client.post("/traffic", json={"a": 0.25, "data_size": 120, "drift_cols": ["carat", "cut"]})
    for _ in range(3):
        client.get("/get_data")
    client.get("/ab_data")
    client.get("/nope")
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    text = resp.get_data(as_text=True)
    assert (
        _sample(
            text, "dethrone_router_requests_total", endpoint="/get_data", method="GET", status="200"
        )
        == 3
    )
    assert (
        _sample(
            text, "dethrone_router_requests_total", endpoint="unmatched", method="GET", status="404"
        )
        == 1
    )
    assert _sample(text, "dethrone_router_rows_served_total", endpoint="/get_data") == 360
    assert _sample(text, "dethrone_router_rows_served_total", endpoint="/ab_data") == 120
    assert (
        _sample(text, "dethrone_router_request_duration_seconds_count", endpoint="/get_data") == 3
    )
    assert _sample(text, "dethrone_router_traffic_a") == 0.25
    assert _sample(text, "dethrone_router_traffic_b") == 0.75
    assert _sample(text, "dethrone_router_data_size") == 120
    assert _sample(text, "dethrone_router_drift_columns") == 2
    assert _sample(text, "dethrone_router_config_version") == 1


def test_openapi_describes_every_endpoint(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {
        "/traffic",
        "/traffic/history",
        "/get_data",
        "/ab_data",
        "/health",
        "/metrics",
        "/openapi.json",
        "/predict",
        "/invocations",
        "/health/live",
        "/health/ready",
        "/feedback",
    }
    assert set(spec["paths"]["/traffic"]) == {"get", "post"}
    assert set(spec["paths"]["/get_data"]) == {"get", "post"}
    schemas = spec["components"]["schemas"]
    assert schemas["TrafficUpdate"]["properties"]["drift_cols"]["items"]["enum"][0] == "carat"
    assert schemas["TrafficUpdate"]["properties"]["data_size"]["maximum"] == 1_000_000
    assert schemas["DriftSpec"]["properties"]["kind"]["enum"] == [
        "scale",
        "shift",
        "redraw",
        "missing",
    ]


def test_one_log_line_per_request_without_bodies(client, caplog):
    caplog.set_level("INFO", logger="dethrone_router")
    client.post("/traffic", json={"a": 0.5, "marker-key-xyz": 1})
    client.post("/traffic", json={"data_size": 10})
    client.get("/get_data?seed=1")
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "dethrone_router.access"
    ]
    assert [(x["method"], x["path"], x["status"], x["rows"]) for x in lines] == [
        ("POST", "/traffic", 400, 0),
        ("POST", "/traffic", 200, 0),
        ("GET", "/get_data", 200, 10),
    ]
    assert all(x["duration_ms"] >= 0 for x in lines)
    assert lines[2]["seed"] == 1 and lines[2]["version"] == 1
    assert "marker-key-xyz" not in caplog.text
    assert "Premium" not in caplog.text and "carat" not in caplog.text
