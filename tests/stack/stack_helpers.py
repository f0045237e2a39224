"""Helpers of the stack tests: Airflow's REST API as a client, and reporting past capture."""

from __future__ import annotations

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
