"""The live_experiment DAG parses without I/O or heavy imports, on its configured schedule."""

from __future__ import annotations

import pytest

from tests.dags.dagbag_probe import parse_dag


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    return parse_dag(home, "live_experiment", EXPERIMENT_CHECK_MINUTES="7")


def test_parses_without_io_or_heavy_imports(parsed):
    assert parsed["errors"] == {} and parsed["calls"] == [] and parsed["heavy"] == []


def test_tasks_and_schedule(parsed):
    assert parsed["tasks"]["evaluate"]["downstream"] == ["check_rollback"]
    assert all(t["retries"] >= 1 for t in parsed["tasks"].values())
    assert "0:07:00" in parsed["schedule"]
