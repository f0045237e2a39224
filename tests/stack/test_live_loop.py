"""The live loop on the native stack: PostgreSQL holds the routers' log and labels, the
scheduler runs ``live_experiment`` (triggered through Airflow's REST API), the CLI starts
and promotes, the simulator sends traffic through nginx, MLflow records every look.

A challenger that is truly worse is deterministic on any machine: a constant model
(scikit-learn's ``DummyRegressor``) registered under a model name of its own, brought in
as ``models:/stack-byo/1`` like a team's own model would be.

1. the offline pre-screen keeps it off live traffic;
2. started anyway (``--skip-prescreen``), the scheduled look keeps the champion: traffic
   returns to it and ``@challenger`` goes;
3. started again and promoted by an operator, the DAG's guardrail check rolls it back by
   itself and the gateway serves the restored champion.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from stack_helpers import cli, report

from dethrone.store import make_engine
from tests.log_helpers import logged_rows, wait_logged

DAG_ID = "live_experiment"
BYO = "stack-byo"
ROUNDS = 4  # looks per phase at most; each after ~20 s of simulated traffic

REGISTER = """
import sys

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.compose import make_column_transformer
from sklearn.dummy import DummyRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from dethrone.slices.datasets import load_diamonds

frame = load_diamonds().sample(2000, random_state=0)
X = frame.drop(columns="price")
cats = ["cut", "color", "clarity"]
for col in cats:
    X[col] = X[col].astype(str).astype(object)
encode = make_column_transformer(
    (OneHotEncoder(handle_unknown="ignore"), cats), remainder="passthrough"
)
model = make_pipeline(encode, DummyRegressor()).fit(X, frame["price"])
with mlflow.start_run():
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        signature=infer_signature(X.head(5), model.predict(X.head(5))),
        pip_requirements=["scikit-learn", "pandas"],
        serialization_format="cloudpickle",
    )
print(mlflow.register_model(info.model_uri, sys.argv[1]).version)
"""


def _simulate(stack, seed: int) -> dict:
    """20 s of traffic through nginx with sticky units, each row labelled half a second
    after its answer."""
    engine = make_engine(stack.router_database_url)
    before = logged_rows(engine)
    out = cli(
        stack,
        *("simulate", "--rate", "40", "--duration", "20", "--units", "2000"),
        *("--rows-per-request", "2", "--label-delay", "0.5", "--seed", str(seed), "--json"),
        flask_url=stack.router_url,
    )
    assert out["errors"] == 0 and out["feedback_sent"] > 0, out
    try:
        wait_logged(engine, before + out["rows"])  # the routers' last flush
    finally:
        engine.dispose()
    return out


def _looks(airflow, stack, task_id: str, seed: int) -> list[dict]:
    """Traffic, then a live_experiment run, until ``task_id`` acts (or ROUNDS)."""
    outs = []
    for i in range(ROUNDS):
        _simulate(stack, seed + i)
        run_id, tasks = airflow.run(DAG_ID, timeout=600)
        assert tasks == {"evaluate": "success", "check_rollback": "success"}, tasks
        outs.append(airflow.xcom(DAG_ID, run_id, task_id))
        if outs[-1]["action"] not in ("continue", "none"):
            break
    return outs


def _serving(stack, arm: str, version: str, timeout: float = 60.0) -> None:
    """Until /predict through nginx answers ``arm`` with ``version`` (the hot swap)."""
    from dethrone.slices.datasets import load_diamonds

    rows = load_diamonds().drop(columns="price").head(1).to_dict(orient="records")
    deadline, seen = time.monotonic() + timeout, set()
    while time.monotonic() < deadline:
        for unit in range(12):
            resp = requests.post(
                f"{stack.router_url}/predict",
                json={"rows": rows},
                headers={"X-Dethrone-Unit": f"probe-{unit}", "Connection": "close"},
                timeout=30,
            )
            assert resp.status_code == 200, resp.text
            seen.add((resp.json()["arm"], resp.json()["model_version"]))
            if (arm, version) in seen:
                return
        time.sleep(1)
    raise AssertionError(f"{arm} v{version} never served through nginx; saw {sorted(seen)}")


def _traffic(stack) -> dict:
    read = {"Authorization": f"Bearer {stack.creds.router_read_token}"}
    return requests.get(f"{stack.router_url}/traffic", headers=read, timeout=30).json()


@pytest.fixture(scope="module")
def byo(stack, first_run) -> str:
    """A constant model registered under a name of its own, as a team's own model is."""
    done = subprocess.run(
        [sys.executable, "-c", REGISTER, BYO],
        env={**stack.base_env(), **stack.pipeline_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return f"models:/{BYO}/{done.stdout.split()[-1]}"


@pytest.fixture(scope="module")
def refused(stack, mlflow, byo) -> dict:
    champion = mlflow.alias("champion")
    out = cli(stack, "experiment", "start", "--challenger", byo, expect=1)
    return {**out, "champion": champion}


@pytest.fixture(scope="module")
def kept(request, stack, airflow, mlflow, byo, refused) -> dict:
    airflow.unpause(DAG_ID)
    began = time.monotonic()
    started = cli(
        stack,
        *("experiment", "start", "--challenger", byo, "--skip-prescreen"),
        *("--reason", "a constant model, to see the look keep the champion"),
    )
    during = _traffic(stack)
    outs = _looks(airflow, stack, "evaluate", seed=100)
    report(request.config, f"live keep: {len(outs)} look(s) in {time.monotonic() - began:.0f}s")
    status = cli(stack, "experiment", "status", "--json")
    return {"started": started, "during": during, "outs": outs, "status": status}


@pytest.fixture(scope="module")
def rolled_back(request, stack, airflow, mlflow, kept) -> dict:
    challenger = kept["started"]["challenger_version"]
    champion = mlflow.alias("champion")
    began = time.monotonic()
    cli(stack, "experiment", "start", "--challenger", challenger, "--skip-prescreen")
    promoted = cli(stack, "experiment", "promote", "--reason", "stack test: promote by hand")
    _serving(stack, "champion", challenger)
    outs = _looks(airflow, stack, "check_rollback", seed=200)
    report(request.config, f"live rollback: {len(outs)} look(s) in {time.monotonic() - began:.0f}s")
    status = cli(stack, "experiment", "status", "--json")
    return {"champion": champion, "promoted": promoted, "outs": outs, "status": status}


def test_offline_prescreen_keeps_a_worse_model_off_live_traffic(mlflow, refused):
    assert "pre-screen" in refused["stderr"], refused["stderr"][-2000:]
    assert mlflow.alias("champion") == refused["champion"]


def test_scheduled_look_keeps_the_champion_against_a_worse_challenger(stack, mlflow, kept):
    started, during = kept["started"], kept["during"]
    assert started["state"] == "running" and started["mode"] == "ab"
    assert (during["mode"], during["a"], during["b"]) == ("ab", 0.5, 0.5)
    assert during["salt"] == started["salt"]
    final = kept["outs"][-1]
    assert final["action"] == "kept", kept["outs"]
    look = final["look"]
    assert look["outcome"] == "keep" and look["ci_high"] < 0, look
    assert min(look["units_a"], look["units_b"]) >= 100  # AB_MIN_ROWS_PER_ARM of the stack
    record = kept["status"]["experiment"]
    assert record["state"] == "kept" and record["reasons"]
    assert mlflow.alias("challenger") is None
    assert _traffic(stack)["mode"] == "champion"
    # every look is in MLflow: the interval's bounds as metrics of the experiment's run
    metrics = {m["key"] for m in mlflow.run(record["run_id"])["data"]["metrics"]}
    assert {"experiment_ci_low", "experiment_ci_high", "experiment_pvalue"} <= metrics
    arms = {a["arm"]: a for a in kept["status"]["arms"]}
    assert arms["champion"]["labelled"] > 0 and arms["challenger"]["labelled"] > 0, arms


def test_worse_promoted_champion_is_rolled_back_by_the_guardrail(stack, mlflow, rolled_back):
    promoted = rolled_back["promoted"]
    assert promoted["state"] == "guardrail" and promoted["holdback"] == 0.25
    final = rolled_back["outs"][-1]
    assert final["action"] == "rolled-back", rolled_back["outs"]
    record = rolled_back["status"]["experiment"]
    assert record["state"] == "rolled-back"
    assert "automatic rollback" in record["reasons"][-1]
    assert mlflow.alias("champion") == rolled_back["champion"]
    _serving(stack, "champion", rolled_back["champion"])
    assert _traffic(stack)["mode"] == "champion"
