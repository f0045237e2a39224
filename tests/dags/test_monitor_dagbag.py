"""The monitor DAG parses without I/O or heavy imports, on MONITOR_INTERVAL."""

from __future__ import annotations

import pytest

from tests.dags.dagbag_probe import parse_dag


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    return parse_dag(tmp_path_factory.mktemp("airflow_home"), "monitor", MONITOR_INTERVAL="30m")


def test_parses_without_io_or_heavy_imports(parsed):
    assert parsed["errors"] == {} and parsed["calls"] == [] and parsed["heavy"] == []


def test_tasks_and_schedule(parsed):
    tasks = parsed["tasks"]
    assert tasks["check"]["downstream"] == ["retrain_branch"]
    assert tasks["retrain_branch"]["downstream"] == ["no_retrain", "retrain"]
    assert tasks["retrain"]["type"] == "TriggerDagRunOperator"
    assert tasks["check"]["retries"] >= 1
    assert "0:30:00" in parsed["schedule"]


def test_a_bad_interval_falls_back_to_an_hour(tmp_path):
    assert "1:00:00" in parse_dag(tmp_path, "monitor", MONITOR_INTERVAL="soon")["schedule"]
