"""Helpers of the stack tests: Airflow's REST API and MLflow's as clients, and reporting past
capture."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import requests


def report(config, line: str) -> None:
    """Write past pytest's capture: start, run and stop times belong in every CI log."""
    terminal = config.pluginmanager.getplugin("terminalreporter")
    capture = config.pluginmanager.getplugin("capturemanager")
    if terminal is None:
        return
    if capture is None:
        terminal.write_line(f"[stack] {line}")
        return
    with capture.global_and_fixture_disabled():
        terminal.write_line(f"\n[stack] {line}")


def cli(stack, *args: str, expect: int = 0, flask_url: str | None = None) -> dict:
    """``dethrone ARGS`` as an operator of the stack would run it (the pipeline's settings);
    its JSON output, or its stderr when ``expect`` is an error code."""
    env = {
        **stack.base_env(),
        **stack.pipeline_env(),
        "FLASK_URL": flask_url or stack.router_direct_url,
        "USER": "stack-test",
    }
    done = subprocess.run(
        [sys.executable, "-m", "dethrone", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == expect, (args, done.returncode, done.stderr[-3000:])
    return json.loads(done.stdout) if expect == 0 else {"stderr": done.stderr}


class AirflowAPI:
    """Airflow 3's REST API (v2) with a JWT from /auth/token, as a user of the stack would."""

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url
        response = requests.post(
            f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **kw) -> requests.Response:
        return self.session.get(f"{self.base}/api/v2{path}", timeout=30, **kw)

    def post(self, path: str, body: dict) -> requests.Response:
        return self.session.post(f"{self.base}/api/v2{path}", json=body, timeout=30)

    def patch(self, path: str, body: dict) -> requests.Response:
        return self.session.patch(f"{self.base}/api/v2{path}", json=body, timeout=30)

    def unpause(self, dag_id: str, timeout: float = 300) -> str:
        """Wait until the dag-processor has parsed ``dag_id`` (no import errors), unpause it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            errors = self.get("/importErrors").json().get("import_errors", [])
            assert not errors, f"DAG import errors: {errors}"
            if self.get(f"/dags/{dag_id}").status_code == 200:
                break
            time.sleep(3)
        else:
            raise AssertionError(f"{dag_id} not parsed by the dag-processor within {timeout:.0f}s")
        response = self.patch(f"/dags/{dag_id}", {"is_paused": False})
        assert response.status_code == 200, response.text
        return dag_id

    def run(self, dag_id: str, conf: dict | None = None, timeout: float = 900):
        """Trigger ``dag_id``, wait for it to succeed; its run id and task states."""
        run_id = self.trigger(dag_id, conf)
        state = self.wait(dag_id, run_id, timeout)
        tasks = self.task_states(dag_id, run_id)
        assert state == "success", f"{run_id} ended {state}: {tasks}"
        return run_id, tasks

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        response = self.post(f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        assert response.status_code == 200, response.text
        return response.json()["dag_run_id"]

    def wait(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise TimeoutError(
            f"{dag_id} run {run_id} not finished after {timeout:.0f}s; "
            f"tasks: {self.task_states(dag_id, run_id)}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        body = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()
        return {ti["task_id"]: ti["state"] for ti in body["task_instances"]}

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        response = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
            params={"deserialize": "true", "stringify": "false"},
        )
        assert response.status_code == 200, response.text
        return response.json()["value"]


class MLflow:
    """MLflow's REST API with the stack's basic-auth admin."""

    def __init__(self, stack) -> None:
        self.base = f"{stack.mlflow_url}/api/2.0/mlflow"
        self.auth = (stack.creds.mlflow_user, stack.creds.mlflow_password)
        self.model = "dethrone-model"  # Settings.model_name default, not overridden in the stack

    def get(self, path: str, **params) -> requests.Response:
        return requests.get(f"{self.base}{path}", params=params, auth=self.auth, timeout=30)

    def alias(self, alias: str) -> str | None:
        response = self.get("/registered-models/alias", name=self.model, alias=alias)
        # 404: no such model yet; 400 INVALID_PARAMETER_VALUE: the model lacks this alias.
        if response.status_code == 404 or (
            response.status_code == 400 and "not found" in response.text
        ):
            return None
        assert response.status_code == 200, response.text
        return response.json()["model_version"]["version"]

    def run(self, run_id: str) -> dict:
        response = self.get("/runs/get", run_id=run_id)
        assert response.status_code == 200, response.text
        return response.json()["run"]
