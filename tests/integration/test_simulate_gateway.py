"""The traffic simulator against the real gateway: MLflow server, router under gunicorn.

Two registered Ridge versions serve as champion and challenger (mode ``ab``, sticky units)
while the router drifts ``carat``; the simulator's requests must reach both versions with
the drifted features and without the target, and its rows and labels must land in the
router's prediction log (read back with ``joined_predictions``).
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
import requests

from dethrone.devstack.localstack import LocalStack, free_port
from dethrone.registry.client import Registry
from dethrone.settings import Settings
from dethrone.simulation.traffic import simulate
from dethrone.slices.router_client import RouterClient
from dethrone.store import database_url, make_engine
from dethrone.store.export import joined_predictions

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "simulate-it"
CATS, NUMS = ["cut", "color", "clarity"], ["carat", "depth", "table", "x", "y", "z"]


def _register(uri: str, diamonds) -> list[str]:
    """Two Ridge pipelines (different regularisation), cloudpickle: quick to log and load."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = diamonds.sample(3000, random_state=3)
    X, y = frame[CATS + NUMS], frame["price"].to_numpy()
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    versions = []
    try:
        for alpha in (1.0, 300.0):
            model = make_pipeline(
                make_column_transformer(
                    (OneHotEncoder(handle_unknown="ignore"), CATS), ("passthrough", NUMS)
                ),
                Ridge(alpha=alpha),
            ).fit(X, y)
            with mlflow.start_run():
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    serialization_format="cloudpickle",
                    signature=infer_signature(X.head(5), model.predict(X.head(5))),
                    pip_requirements=["scikit-learn", "pandas"],
                )
            versions.append(str(mlflow.register_model(info.model_uri, NAME).version))
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return versions


def _wait_models(url: str, expected: dict[str, str], timeout: float = 60.0) -> None:
    """Until both workers serve ``expected`` (a new connection reaches either worker)."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            body = requests.get(
                url + "/health/ready", timeout=5, headers={"Connection": "close"}
            ).json()
            seen[str(body["pid"])] = body["models"]
        except (requests.RequestException, ValueError, KeyError):
            pass
        if len(seen) >= 2 and all(m == expected for m in seen.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"workers did not reach {expected}: {seen}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, diamonds):
    home = tmp_path_factory.mktemp("simulate")
    ls = LocalStack(home)
    try:
        ls.start_mlflow(free_port())
        uri = ls.info("mlflow").url
        champion, challenger = _register(uri, diamonds)
        reg = Registry(Settings.from_env({}, mlflow_tracking_uri=uri, model_name=NAME))
        reg.set_alias("champion", champion)
        reg.set_alias("challenger", challenger)
        env = {
            "MODEL_NAME": NAME,
            "SERVING_REFRESH_SECONDS": "1",
            "ROUTER_LOG_LEVEL": "warning",
            "LOG_FLUSH_SECONDS": "0.2",
        }
        ls.start_router(free_port(), workers=2, extra_env=env)
        url = ls.info("router").url
        _wait_models(url, {"champion": champion, "challenger": challenger})
        yield {"url": url, "champion": champion, "challenger": challenger, "home": home}
    finally:
        ls.stop_all()


class RecordingClient(RouterClient):
    """The real client, keeping the rows it sent (to check what the simulator drew)."""

    sent: list[dict]

    def predict(self, rows, **kw):
        self.sent.extend(rows)
        return super().predict(rows, **kw)


def test_simulated_traffic_and_labels_land_in_the_prediction_log(gateway, diamonds):
    url = gateway["url"]
    resp = requests.post(
        url + "/traffic",
        timeout=10,
        json={
            "mode": "ab",
            "a": 0.5,
            "b": 0.5,
            "salt": "sim-it",
            "drift_cols": ["carat"],
            "drift": {"carat": {"kind": "shift", "intensity": 2.0}},
            "data_size": 500,
        },
    )
    assert resp.status_code == 200, resp.text
    client = RecordingClient(url, retries=1, backoff=0.2, timeout=10)
    client.sent = []
    views = []
    report = simulate(
        client,
        rate=25.0,
        duration=4.0,
        units=10,
        rows_per_request=2,
        label_delay=1.0,
        label_coverage=0.7,
        random_state=5,
        progress=views.append,
        settings=Settings(target="price"),
    )
    assert report.requests == 100 and report.errors == 0, report.error_statuses
    assert report.rows == len(client.sent) == 200
    assert set(report.per_version) == {gateway["champion"], gateway["challenger"]}
    assert set(report.per_arm) == {"champion", "challenger"}
    # sticky units: each of the 10 units was served by one arm only
    assert sum(arm["units"] for arm in report.per_arm.values()) == 10
    assert all("price" not in row for row in client.sent)
    carat = np.array([row["carat"] for row in client.sent])
    base = diamonds["carat"]
    # the router's shift moved carat well away from the data set's distribution
    assert abs(carat.mean() - base.mean()) > 5 * base.std() / np.sqrt(len(carat))
    assert views[-1]["done"] and report.seconds < 4.0 + 1.0 + 5.0
    _check_log(gateway, report, diamonds)


def _check_log(gateway, report, diamonds) -> None:
    """Every answered row is in the log with its arm and version; the labels are joined."""
    engine = make_engine(database_url(Settings(router_data_dir=str(gateway["home"] / "router"))))
    try:
        deadline = time.monotonic() + 10  # the workers commit their log every 0.2 s
        while len(log := joined_predictions(engine)) < report.rows and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        engine.dispose()
    served = log[log["served"]]
    assert len(served) == report.rows and served["request_id"].str.startswith("sim-").all()
    assert served.groupby("arm").size().to_dict() == {
        arm: c["rows"] for arm, c in report.per_arm.items()
    }
    assert served.groupby("arm")["model_version"].unique().map(list).to_dict() == {
        "champion": [gateway["champion"]],
        "challenger": [gateway["challenger"]],
    }
    assert served["unit"].nunique() == 10 and (served.groupby("unit")["arm"].nunique() == 1).all()
    labelled = served[served["label"].notna()]
    assert len(labelled) == report.feedback_sent and report.feedback_errors == 0
    assert abs(len(labelled) / len(served) - 0.7) <= 4 * np.sqrt(0.7 * 0.3 / len(served))
    assert set(labelled["label"]) <= set(diamonds["price"].astype(float))  # true prices
    np.testing.assert_allclose(labelled["loss"], (labelled["prediction"] - labelled["label"]).abs())
    features = pd.DataFrame([json.loads(f) for f in served["features_json"]])
    assert "price" not in features and set(features) == set(CATS + NUMS)
