"""The MLflow record of a live experiment, on a file-based MLflow store (no server)."""

from __future__ import annotations

import pytest

from dethrone.experiments.tracking import LOOKS_JSON, LOOKS_PLOT, LOOKS_TABLE, Tracker
from dethrone.registry.records import LiveExperiment, Look
from dethrone.settings import Settings


@pytest.fixture
def tracker(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    made = Tracker(Settings(mlflow_tracking_uri=uri, live_experiment_name="live-unit"))
    # artifacts in the test's folder, not ./mlruns
    made.client.create_experiment("live-unit", artifact_location=(tmp_path / "a").as_uri())
    yield made
    mlflow.set_tracking_uri(previous)


def test_run_is_found_again_and_looks_accumulate(tracker):
    rec = LiveExperiment(
        id="live-v2-abc", champion_version="1", challenger_version="2", split=0.5, state="running"
    )
    run_id = tracker.start_run(rec)
    assert tracker.start_run(rec) == run_id  # a retried start finds its run
    rec = LiveExperiment(**{**rec.to_dict(), "run_id": run_id, "looks": 2})
    tracker.update(rec)
    assert tracker.looks(rec) == []
    tracker.log_look(
        rec,
        Look(
            time=1.0,
            units_a=10,
            units_b=9,
            ci_low=-1.0,
            ci_high=2.0,
            pvalue=0.5,
            outcome="continue",
        ),
    )
    rows = tracker.log_look(
        rec,
        Look(
            time=2.0,
            phase="guardrail",
            units_a=30,
            units_b=5,
            ci_low=0.5,
            ci_high=1.5,
            pvalue=0.01,
            outcome="promote",
        ),
    )
    assert (
        [r["outcome"] for r in tracker.looks(rec)]
        == ["continue", "promote"]
        == [r["outcome"] for r in rows]
    )
    client = tracker.client
    run = client.get_run(run_id)
    assert run.data.tags["dethrone.live.id"] == "live-v2-abc"
    assert run.data.tags["dethrone.live.looks"] == "2"
    assert run.data.metrics["guardrail_ci_low"] == 0.5
    names = {a.path for a in client.list_artifacts(run_id, "looks")}
    assert {LOOKS_JSON, LOOKS_TABLE, LOOKS_PLOT} <= names
    history = client.get_metric_history(run_id, "experiment_units_a")
    assert [(m.step, m.value) for m in history] == [(1, 10.0)]
