"""The prediction gateway end to end: a real MLflow server, the router under gunicorn (2 workers).

Four versions of one registered model cover the flavours a challenger may come in: a
RandomForest pipeline in MLflow 3's default skops format, a Ridge pipeline in cloudpickle,
a custom ``PythonModel`` (models from code) and a classifier. Each test sets the aliases
and the traffic config it needs, so the tests do not depend on their order.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from dethrone.devstack.localstack import LocalStack, free_port
from dethrone.registry.client import Registry
from dethrone.registry.records import Decision
from dethrone.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAME = "serving-it"
CATS, NUMS = ["cut", "color", "clarity"], ["carat", "depth", "table", "x", "y", "z"]
CLOSE = {"Connection": "close"}  # a new connection each time, so both workers answer
CUSTOM_MODEL = """
import numpy as np
import mlflow


class CaratPrice(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return np.asarray(model_input["carat"], dtype=float) * 4000.0 + model_input["depth"]


mlflow.models.set_model(CaratPrice())
"""


def _features(frame):
    X = frame[CATS + NUMS].copy()
    for col in CATS:
        X[col] = X[col].astype(str).astype(object)
    return X


def _register(uri: str, diamonds, tmp) -> dict[str, str]:
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = diamonds.sample(3000, random_state=1)
    X, y = _features(frame), frame["price"].to_numpy()

    def pipe(est, scale=False):
        nums = StandardScaler() if scale else "passthrough"
        return make_pipeline(
            make_column_transformer((OneHotEncoder(handle_unknown="ignore"), CATS), (nums, NUMS)),
            est,
        )

    band = np.where(y < 1000, "low", np.where(y < 5000, "mid", "high"))
    fitted = {
        "forest": pipe(RandomForestRegressor(n_estimators=20, random_state=0)).fit(X, y),
        "ridge": pipe(Ridge()).fit(X, y),
        "classifier": pipe(LogisticRegression(max_iter=300), scale=True).fit(X, band),
    }
    pins = ["scikit-learn", "pandas"]  # skip MLflow's slow requirement inference
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    versions = {}
    try:
        for key, model in fitted.items():
            with mlflow.start_run():
                info = mlflow.sklearn.log_model(
                    model,
                    name="model",
                    input_example=X.head(5),
                    pip_requirements=pins,
                    signature=infer_signature(X.head(5), model.predict(X.head(5))),
                    serialization_format="cloudpickle" if key == "ridge" else "skops",
                    skops_trusted_types=["sklearn.tree._tree.Tree"],
                )
            versions[key] = mlflow.register_model(info.model_uri, NAME).version
        code = tmp / "carat_price.py"
        code.write_text(CUSTOM_MODEL)
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(code), input_example=X.head(5), pip_requirements=pins
            )
        versions["custom"] = mlflow.register_model(info.model_uri, NAME).version
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    return {k: str(v) for k, v in versions.items()}


@pytest.fixture(scope="module")
def gw(tmp_path_factory, diamonds):
    """MLflow with the four versions, and the gateway (2 workers, 1 s alias refresh)."""
    home = tmp_path_factory.mktemp("serving")
    ls = LocalStack(home)
    try:
        mlflow_port = free_port()
        ls.start_mlflow(mlflow_port)
        uri = ls.info("mlflow").url
        versions = _register(uri, diamonds, home)
        reg = Registry(Settings.from_env({}, mlflow_tracking_uri=uri, model_name=NAME))
        reg.set_alias("champion", versions["forest"])
        env = {"MODEL_NAME": NAME, "SERVING_REFRESH_SECONDS": "1", "ROUTER_LOG_LEVEL": "warning"}
        ls.start_router(free_port(), workers=2, extra_env=env)
        rows = _features(diamonds.sample(2000, random_state=7))
        yield SimpleNamespace(
            ls=ls,
            reg=reg,
            versions=versions,
            env=env,
            rows=rows,
            mlflow_port=mlflow_port,
            url=ls.info("router").url,
        )
    finally:
        ls.stop_all()


def _records(frame):
    return frame.to_dict(orient="records")


def _answered(seen: list, n: int, *, after: float = 0.0, timeout: float = 60.0) -> None:
    """Until ``n`` answers stamped after ``after`` are in ``seen`` (clients append to it)."""
    deadline = time.monotonic() + timeout
    while sum(1 for s in list(seen) if s[0] > after) < n:
        assert time.monotonic() < deadline, f"fewer than {n} answers after {after}: {seen[-5:]}"
        time.sleep(0.05)


def _wait_models(url: str, expected: dict[str, str | None], timeout: float = 60.0) -> None:
    """Until both workers report exactly ``expected`` on /health/ready."""
    views: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            resp = requests.get(url + "/health/ready", timeout=5, headers=CLOSE)
            body = resp.json()
            views[str(body["pid"])] = body["models"]
        except (requests.RequestException, ValueError, KeyError):
            pass
        if len(views) >= 2 and all(v == expected for v in views.values()):
            return
        time.sleep(0.05)
    raise AssertionError(f"workers did not reach {expected}: {views}")


def _setup(
    gw, *, champion: str, challenger: str | None = None, expect_challenger="same", **traffic
) -> None:
    gw.reg.set_alias("champion", gw.versions[champion])
    if challenger:
        gw.reg.set_alias("challenger", gw.versions[challenger])
    elif gw.reg.alias_version("challenger") is not None:
        gw.reg.client.delete_registered_model_alias(NAME, "challenger")
    resp = requests.post(
        gw.url + "/traffic",
        json={"mode": "ab", "a": 0.5, "salt": "", "unit_column": None, **traffic},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    chall = gw.versions[challenger] if challenger else None
    _wait_models(
        gw.url,
        {
            "champion": gw.versions[champion],
            "challenger": chall if expect_challenger == "same" else None,
        },
    )


def _pyfunc(gw, key):
    import mlflow
    import mlflow.pyfunc

    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    uri = gw.ls.info("mlflow").url
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return mlflow.pyfunc.load_model(f"models:/{NAME}/{gw.versions[key]}")
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


@pytest.mark.parametrize("key", ["forest", "ridge", "custom", "classifier"])
def test_predictions_equal_the_registered_models_own(gw, key):
    _setup(gw, champion=key, mode="champion")
    X = gw.rows.head(60).reset_index(drop=True)
    expected = _pyfunc(gw, key).predict(X)
    expected = np.asarray(expected).tolist()
    split = {"columns": list(X.columns), "data": X.to_numpy().tolist()}
    for path, body in (
        ("/invocations", {"dataframe_split": split}),
        ("/predict", {"rows": _records(X)}),
    ):
        resp = requests.post(gw.url + path, json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        out = resp.json()
        assert out["predictions"] == expected
        assert (out["model_version"], out["arm"]) == (gw.versions[key], "champion")
    if key == "classifier":
        raw = _pyfunc(gw, key).get_raw_model()
        out = requests.post(
            gw.url + "/predict", json={"rows": _records(X), "probabilities": True}, timeout=30
        ).json()
        assert out["classes"] == raw.classes_.tolist()
        assert out["probabilities"] == raw.predict_proba(X).tolist()


def _arm(url: str, unit: str, row: dict) -> tuple[str, str]:
    resp = requests.post(
        url + "/predict",
        json={"rows": [row]},
        timeout=30,
        headers={**CLOSE, "X-Dethrone-Unit": unit},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["arm"], resp.headers["X-Dethrone-Worker"]


def _arms(url, units, row):
    with ThreadPoolExecutor(8) as pool:
        return dict(zip(units, pool.map(lambda u: _arm(url, u, row), units), strict=True))


def test_sticky_split_across_workers_and_restart(gw):
    _setup(gw, champion="forest", challenger="ridge", mode="ab", a=0.7, salt="it-sticky")
    row = _records(gw.rows.head(1))[0]
    units = [f"user-{i}" for i in range(2000)]
    first = _arms(gw.url, units, row)
    share = np.mean([arm == "champion" for arm, _ in first.values()])
    assert abs(share - 0.7) <= 3 * np.sqrt(0.7 * 0.3 / len(units))
    again = _arms(gw.url, units[:400], row)
    assert {u: a for u, (a, _) in again.items()} == {u: first[u][0] for u in units[:400]}
    workers = {w for _, w in first.values()} | {w for _, w in again.values()}
    assert len(workers) == 2
    gw.ls.stop("router")
    gw.ls.start_router(free_port(), workers=2, extra_env=gw.env)
    gw.url = gw.ls.info("router").url
    _wait_models(gw.url, {"champion": gw.versions["forest"], "challenger": gw.versions["ridge"]})
    after = _arms(gw.url, units[-300:], row)
    assert {u: a for u, (a, _) in after.items()} == {u: first[u][0] for u in units[-300:]}
    assert not workers & {w for _, w in after.values()}  # new processes, same arms


def _metric(url: str, line_start: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def test_shadow_mode_answers_with_the_champion_and_scores_the_challenger(gw):
    _setup(gw, champion="forest", challenger="ridge", mode="shadow", a=0.0)
    ridge = gw.versions["ridge"]
    series = f'dethrone_predictions_total{{arm="challenger",model_version="{ridge}"}}'
    before = _metric(gw.url, series)
    X = gw.rows.head(5)
    expected = _pyfunc(gw, "forest").predict(X).tolist()
    for unit in range(40):
        resp = requests.post(
            gw.url + "/predict",
            json={"rows": _records(X)},
            timeout=30,
            headers={**CLOSE, "X-Dethrone-Unit": f"s{unit}"},
        )
        out = resp.json()
        assert (out["arm"], out["model_version"]) == ("champion", gw.versions["forest"])
        assert out["predictions"] == expected
    deadline = time.monotonic() + 15
    while _metric(gw.url, series) < before + 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _metric(gw.url, series) == before + 200  # 40 requests x 5 rows, scored off-path


def test_hot_swap_under_load_serves_the_new_version_without_failures(gw):
    _setup(gw, champion="forest", mode="champion")
    body = {"rows": _records(gw.rows.head(3))}
    seen: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                resp = requests.post(gw.url + "/predict", json=body, timeout=30, headers=CLOSE)
                version = resp.json().get("model_version") if resp.ok else None
                seen.append((time.monotonic(), resp.status_code, version))
            except requests.RequestException as exc:
                seen.append((time.monotonic(), 0, repr(exc)))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        _answered(seen, 25)  # traffic flowing before the swap
        moved = time.monotonic()
        gw.reg.set_alias("champion", gw.versions["custom"])
        _wait_models(gw.url, {"champion": gw.versions["custom"], "challenger": None})
        served_after = time.monotonic() - moved
        _answered(seen, 25, after=moved + served_after)  # and after it
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert len(seen) > 50
    assert [s for s in seen if s[1] != 200] == []
    assert {v for _, _, v in seen} == {gw.versions["forest"], gw.versions["custom"]}
    last_old = max(t for t, _, v in seen if v == gw.versions["forest"])
    assert last_old - moved < 1 + 20  # refresh interval + load time (generous on a busy box)
    assert served_after < 1 + 20
    # Each worker's gauge: both serve the new version (1), both served the old one (0).
    lines = requests.get(gw.url + "/metrics", timeout=10).text.splitlines()

    def workers(version: str, value: str) -> int:
        return sum(
            1
            for line in lines
            if line.startswith("dethrone_model_info{")
            and 'alias="champion"' in line
            and f'version="{version}"' in line
            and line.endswith(f" {value}")
        )

    assert workers(gw.versions["custom"], "1.0") == 2
    assert workers(gw.versions["forest"], "0.0") == 2


def test_rejected_challenger_never_gets_traffic(gw):
    gw.reg.record_decision(gw.versions["classifier"], Decision(outcome="keep", reasons=["test"]))
    _setup(gw, champion="forest", challenger="classifier", expect_challenger=None, mode="ab", a=0.0)
    for unit in range(30):
        arm, _ = _arm(gw.url, f"r{unit}", _records(gw.rows.head(1))[0])
        assert arm == "champion"
    view = requests.get(gw.url + "/health/ready", timeout=10).json()
    assert gw.versions["classifier"] in view["refused"]


def test_mlflow_stopped_keeps_serving_and_reports_degraded(gw):
    _setup(gw, champion="forest", mode="champion")
    X = gw.rows.head(4)
    expected = requests.post(gw.url + "/predict", json={"rows": _records(X)}, timeout=30).json()
    gw.ls.stop("mlflow")
    try:
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            health = requests.get(gw.url + "/health", timeout=10, headers=CLOSE).json()
            if health["status"] == "degraded":
                pids.add(str(health["serving"]["pid"]))
            time.sleep(0.1)
        assert len(pids) == 2, "both workers report degraded"
        for _ in range(20):
            resp = requests.post(
                gw.url + "/predict", json={"rows": _records(X)}, timeout=30, headers=CLOSE
            )
            assert resp.status_code == 200
            assert resp.json()["predictions"] == expected["predictions"]
        assert requests.get(gw.url + "/health/ready", timeout=10).status_code == 200
    finally:
        gw.ls.start_mlflow(gw.mlflow_port)
    deadline = time.monotonic() + 30
    while requests.get(gw.url + "/health", timeout=10).json()["status"] != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_bad_inputs_give_4xx_and_change_nothing(gw):
    _setup(gw, champion="forest", challenger="ridge", mode="ab", a=0.6, salt="bad")
    config = requests.get(gw.url + "/traffic", timeout=10).json()
    row = _records(gw.rows.head(1))[0]
    cases = [
        ({"rows": [{k: v for k, v in row.items() if k != "carat"}]}, 400, "carat"),
        ({"rows": [{**row, "colour": "D"}]}, 400, "colour"),
        ({"rows": [{**row, "cut": 5}]}, 400, "cut"),
        ({"rows": [{**row, "depth": "deep"}]}, 400, "depth"),
        ({"rows": []}, 400, "rows"),
        ({"dataframe_records": [row] * 1001}, 413, "dataframe_records"),
    ]
    for body, status, field in cases:
        for path in ("/predict", "/invocations"):
            resp = requests.post(gw.url + path, json=body, timeout=30)
            assert (resp.status_code, resp.json()["error"]["field"]) == (status, field)
    for data, ctype, status in (
        (b"{oops", "application/json", 400),
        (b"a,b\n1,2", "text/csv", 415),
        (b"[" + b"1," * 3_000_000 + b"1]", "application/json", 413),
    ):
        resp = requests.post(
            gw.url + "/predict", data=data, timeout=30, headers={"Content-Type": ctype}
        )
        assert resp.status_code == status and "error" in resp.json()
    assert requests.get(gw.url + "/traffic", timeout=10).json() == config
    _wait_models(
        gw.url, {"champion": gw.versions["forest"], "challenger": gw.versions["ridge"]}, timeout=5
    )
