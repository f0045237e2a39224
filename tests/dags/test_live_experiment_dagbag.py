"""The live_experiment DAG parses without I/O or heavy imports, on its configured schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.dags.test_main_pipeline_dagbag import _PROBE, DAGS

_LIVE_PROBE = _PROBE.replace('bag.dags.get("main_pipeline")', 'bag.dags.get("live_experiment")')


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "EXPERIMENT_CHECK_MINUTES": "7",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
        "FLASK_URL": "http://127.0.0.1:9",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _LIVE_PROBE, str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert proc.returncode == 0 and line, proc.stderr[-3000:]
    return json.loads(line[-1][len("RESULT") :])


def test_parses_without_io_or_heavy_imports(parsed):
    assert parsed["errors"] == {} and parsed["calls"] == [] and parsed["heavy"] == []


def test_tasks_and_schedule(parsed):
    assert parsed["tasks"]["evaluate"]["downstream"] == ["check_rollback"]
    assert all(t["retries"] >= 1 for t in parsed["tasks"].values())
    assert "0:07:00" in parsed["schedule"]
