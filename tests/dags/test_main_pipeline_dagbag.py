"""The DAG file parses cleanly, cheaply and without touching the network or a database."""

from __future__ import annotations

import pytest

from tests.dags.dagbag_probe import parse_dag


@pytest.fixture(scope="module")
def parsed(tmp_path_factory) -> dict:
    return parse_dag(tmp_path_factory.mktemp("airflow_home"), "main_pipeline")


def test_dag_imports_without_errors(parsed):
    assert parsed["errors"] == {}
    assert "tasks" in parsed, "main_pipeline not found in the DagBag"


def test_no_network_or_database_calls_while_parsing(parsed):
    assert parsed["calls"] == []


def test_heavy_libraries_are_imported_inside_tasks_only(parsed):
    assert parsed["heavy"] == []


def test_tasks_and_branches(parsed):
    tasks = parsed["tasks"]
    assert set(tasks) == {
        "check_champion",
        "fetch_training_data",
        "train_model",
        "register_model",
        "set_champion",
        "fetch_current_data",
        "detect_drift",
        "drift_branch",
        "no_drift",
        "train_challenger",
        "register_challenger",
        "ab_test",
        "decision_branch",
        "promote_challenger",
        "start_live_experiment",
        "keep_champion",
    }
    branches = {k for k, v in tasks.items() if "Branch" in v["type"]}
    assert branches == {"check_champion", "drift_branch", "decision_branch"}
    assert tasks["check_champion"]["downstream"] == ["fetch_current_data", "fetch_training_data"]
    assert tasks["drift_branch"]["downstream"] == ["no_drift", "train_challenger"]
    assert tasks["decision_branch"]["downstream"] == [
        "keep_champion",
        "promote_challenger",
        "start_live_experiment",
    ]
    assert tasks["train_model"]["downstream"] == ["register_model"]
    assert tasks["register_model"]["downstream"] == ["set_champion"]
    assert "ab_test" in tasks["register_challenger"]["downstream"]


def test_every_task_retries(parsed):
    assert all(t["retries"] >= 1 for t in parsed["tasks"].values())


def test_params_override_settings(parsed):
    from dethrone.pipeline.steps import RUN_PARAMS
    from dethrone.settings import Settings

    settings_names = set(Settings.__dataclass_fields__)
    for name in parsed["params"]:
        assert name in settings_names or name in RUN_PARAMS, name
    assert {"ks_pvalue_threshold", "psi_threshold", "ab_alpha", "force_challenger"} <= set(
        parsed["params"]
    )
    assert parsed["schedule"] == "None"
