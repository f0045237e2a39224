"""main_pipeline on the native stack, triggered through Airflow's REST API like a user would:
run 1 crowns the first champion; drift on carat and color set with POST /traffic makes
run 2 flag exactly those features, register a challenger, A/B test it and decide.

Everything is checked where a user would look: Airflow's run and task states and XComs,
MLflow's registry (aliases) and tracking API with the basic-auth admin, and the S3 buckets.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import requests
from botocore.config import Config
from stack_helpers import cli, report

from dethrone.devstack.process import wait_until

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "main_pipeline"
DAG_FILE = ROOT / "airflow" / "dags" / f"{DAG_ID}.py"

pytestmark = pytest.mark.skipif(
    not DAG_FILE.exists(), reason=f"{DAG_FILE.relative_to(ROOT)} does not exist yet"
)


@pytest.fixture(scope="module")
def second_run(request, stack, airflow, first_run, mlflow):
    champion_before = mlflow.alias("champion")
    response = requests.post(
        f"{stack.router_url}/traffic",
        timeout=30,
        json={"drift_cols": ["carat", "color"]},
        headers={"Authorization": f"Bearer {stack.creds.router_token}"},
    )
    assert response.status_code == 200, response.text
    began = time.monotonic()
    run_id, tasks = airflow.run(DAG_ID)
    report(request.config, f"run 2 ({run_id}) took {time.monotonic() - began:.0f}s")
    return run_id, tasks, champion_before


def test_first_run_crowns_a_champion(airflow, mlflow, first_run):
    run_id, tasks = first_run
    assert tasks["check_champion"] == "success"
    assert tasks["set_champion"] == "success"
    assert tasks["fetch_current_data"] == "skipped"
    registered = airflow.xcom(DAG_ID, run_id, "register_model")
    assert mlflow.alias("champion") == str(registered["version"])


def test_drift_on_carat_and_color_is_flagged_exactly(airflow, second_run):
    run_id, tasks, _ = second_run
    assert tasks["fetch_training_data"] == "skipped"
    drift = airflow.xcom(DAG_ID, run_id, "detect_drift")
    assert drift["drifted"] is True
    assert set(drift["drifted_features"]) == {"carat", "color"}


def test_challenger_is_registered_tested_and_decided(airflow, mlflow, second_run):
    run_id, tasks, champion_before = second_run
    assert tasks["train_challenger"] == "success" and tasks["ab_test"] == "success"
    challenger = str(airflow.xcom(DAG_ID, run_id, "register_challenger")["version"])
    assert challenger != champion_before
    version = mlflow.get("/model-versions/get", name=mlflow.model, version=challenger)
    assert version.status_code == 200, version.text
    decision = airflow.xcom(DAG_ID, run_id, "ab_test")
    assert decision["outcome"] in {"promote", "keep", "inconclusive"}
    assert decision["reasons"], "a decision must say why"
    assert str(decision["challenger_version"]) == challenger
    comparison = mlflow.run(decision["comparison_run_id"])
    assert comparison["info"]["status"] == "FINISHED"
    if decision["outcome"] == "promote":
        assert tasks["promote_challenger"] == "success" and tasks["keep_champion"] == "skipped"
        assert mlflow.alias("champion") == challenger
        # Promotion moves @champion in one step; @challenger may go with it, never elsewhere.
        assert mlflow.alias("challenger") in (None, challenger)
    else:
        assert tasks["keep_champion"] == "success" and tasks["promote_challenger"] == "skipped"
        assert mlflow.alias("champion") == champion_before
        assert mlflow.alias("challenger") == challenger


def test_artifacts_and_staged_frames_live_in_s3(stack, second_run):
    s3 = boto3.client(
        "s3",
        endpoint_url=stack.s3_url,
        region_name="us-east-1",
        aws_access_key_id=stack.creds.s3_access_key,
        aws_secret_access_key=stack.creds.s3_secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )
    for bucket in (stack.artifact_bucket, stack.staging_bucket):
        listed = s3.list_objects_v2(Bucket=bucket, MaxKeys=5)
        assert listed.get("KeyCount", 0) > 0, f"nothing stored in s3://{bucket}"


# ------------------------------------------------------------------ serving, log, replicas
@pytest.fixture(scope="module")
def replicas(stack, second_run):
    """A second router on the same PostgreSQL, and Prometheus scraping both."""
    stack.start_router("router2", stack.ports.router2)
    return SimpleNamespace(
        one=stack.router_direct_url,
        two=f"http://127.0.0.1:{stack.ports.router2}",
        prometheus=stack.start_prometheus(),
    )


def _ready_on(url: str, champion: str, timeout: float = 120.0) -> None:
    deadline, pids = time.monotonic() + timeout, set()
    while len(pids) < 2 and time.monotonic() < deadline:
        resp = requests.get(f"{url}/health/ready", timeout=10, headers={"Connection": "close"})
        if resp.status_code == 200 and resp.json()["models"].get("champion") == champion:
            pids.add(resp.json()["pid"])
        time.sleep(0.2)
    assert len(pids) == 2, f"{url}: both workers should serve @champion v{champion}"


def _logged_rows(log) -> set[tuple]:
    """(request id, row, arm, version, prediction) of each row of a joined log frame."""
    return {
        (r.request_id, int(r.row), r.arm, r.model_version, float(r.prediction))
        for r in log.itertuples()
    }


def _logged(engine) -> set[tuple]:
    from dethrone.store.export import joined_predictions

    return _logged_rows(joined_predictions(engine))


def test_replicas_share_config_log_and_feedback(stack, mlflow, replicas):
    from dethrone.slices.datasets import load_diamonds
    from dethrone.store import make_engine
    from dethrone.store.export import joined_predictions

    write = {"Authorization": f"Bearer {stack.creds.router_token}"}
    read = {"Authorization": f"Bearer {stack.creds.router_read_token}"}
    posted = requests.post(
        f"{replicas.one}/traffic",
        json={"mode": "champion", "salt": "stack"},
        headers=write,
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    seen = requests.get(f"{replicas.two}/traffic", headers=read, timeout=30).json()
    assert (seen["mode"], seen["salt"], seen["version"]) == (
        "champion",
        "stack",
        posted.json()["traffic"]["version"],
    )
    champion = mlflow.alias("champion")
    rows = load_diamonds().drop(columns="price").head(5).to_dict(orient="records")
    answered = []
    for url in (replicas.one, replicas.two):
        _ready_on(url, champion)
        for _ in range(6):
            resp = requests.post(
                f"{url}/predict", json={"rows": rows}, timeout=30, headers={"Connection": "close"}
            )
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["model_version"] == champion
            answered += [
                (body["request_id"], i, "champion", champion, float(p))
                for i, p in enumerate(body["predictions"])
            ]
        assert (
            requests.post(f"{url}/predict", json={"rows": [{"carat": "x"}]}, timeout=30).status_code
            == 400
        )  # errors for the error panel
    # Feedback posted to either replica joins rows logged by the other, once both flushed
    # (LOG_FLUSH_SECONDS = 1)
    engine = make_engine(stack.router_database_url)
    try:
        flushed = wait_until(lambda: set(answered) <= _logged(engine), timeout=60, interval=0.2)
        assert flushed, "answered rows never reached the log"
    finally:
        engine.dispose()
    for k, url in enumerate((replicas.two, replicas.one)):
        rid = answered[k * 30][0]
        resp = requests.post(
            f"{url}/feedback",
            timeout=30,
            # labels need a token (FEEDBACK_TOKEN, else the write token: issue 18)
            headers=write,
            json=[{"request_id": rid, "row": r, "label": 1000.0 + r} for r in range(5)],
        )
        assert resp.status_code == 200 and resp.json()["counts"]["stored"] == 5, resp.text
    engine = make_engine(stack.router_database_url)
    try:
        log = joined_predictions(engine)
    finally:
        engine.dispose()
    assert set(answered) <= _logged_rows(log)
    labelled = log[log["request_id"].isin({answered[0][0], answered[30][0]})]
    assert sorted(labelled["label"]) == sorted([1000.0 + r for r in range(5)] * 2)


# The champion the pipeline crowns is a regressor: no class counts exist to chart.
_NO_SERIES_EXPECTED = {"Predicted classes per arm"}


def test_every_dashboard_query_is_valid_and_has_data(stack, replicas):
    import json

    board = json.loads((ROOT / "grafana" / "dashboards" / "dethrone-router.json").read_text())
    # Traffic of its own on both replicas: labelled rows with units (the experiment panels),
    # and a refused request (the error panel).
    for url in (replicas.one, replicas.two):
        out = cli(
            stack,
            *("simulate", "--rate", "20", "--duration", "5", "--units", "200"),
            *("--label-delay", "0.2", "--seed", "7", "--json"),
            flask_url=url,
        )
        assert out["errors"] == 0 and out["feedback_sent"] > 0, out
        assert (
            requests.post(f"{url}/predict", json={"rows": [{"carat": "x"}]}, timeout=30).status_code
            == 400
        )
    # A few scrapes (every 2 s) after that traffic, once the label gauges computed before
    # the labels arrived have expired (COVERAGE_TTL = 15 s).
    time.sleep(20)
    empty = []
    for panel in board["panels"]:
        for target in panel["targets"]:
            query = target["expr"].replace("$__rate_interval", "1m")
            resp = requests.get(
                f"{replicas.prometheus}/api/v1/query", timeout=30, params={"query": query}
            )
            assert resp.status_code == 200 and resp.json()["status"] == "success", (
                panel["title"],
                query,
                resp.text,
            )
            if not resp.json()["data"]["result"] and panel["title"] not in _NO_SERIES_EXPECTED:
                empty.append((panel["title"], query))
    assert not empty, f"queries without a series: {empty}"
