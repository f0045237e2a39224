"""The champion/challenger loop with real Airflow, MLflow, router and S3, in order.

run 1 trains the first champion -> a run without drift ends early -> a run with drift on
carat and color challenges it -> an A/A challenger is not promoted -> with MLflow down a
run fails clearly and leaves the aliases alone -> ``dethrone rollback``.

The no-drift run comes right after run 1 on purpose: once a challenger trained on drifted
data is promoted, the champion's reference *is* the drifted data, and switching the
router's drift off is then (correctly) reported as drift.
"""

from __future__ import annotations

import json

import pytest

from dethrone.registry.records import Decision, DriftVerdict, RunIdentity
from dethrone.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SEED = 11


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    return Settings.from_env().replace(
        mlflow_tracking_uri=stack.info("mlflow").url,
        flask_url=stack.info("router").url,
        dethrone_home=str(stack.home),
    )


@pytest.fixture(scope="module")
def registry(settings):
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import Registry

    configure_mlflow(settings)
    return Registry(settings)


@pytest.fixture(scope="module")
def router(settings):
    from dethrone.slices.router_client import RouterClient

    return RouterClient.from_settings(settings)


def run_dag(stack, name, **conf):
    rc, log = stack.run_dag(conf or None, log_name=name)
    return rc, log.read_text(errors="replace")


def versions(registry) -> list[str]:
    return sorted(
        str(v.version) for v in registry.client.search_model_versions(f"name = '{registry.name}'")
    )


def latest_run(registry, experiment, role):
    exp = registry.client.get_experiment_by_name(experiment)
    runs = registry.client.search_runs(
        [exp.experiment_id],
        filter_string=f"tags.`{RunIdentity.tag('role')}` = '{role}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0]


def test_run1_trains_first_champion_with_reference_profile(stack, registry, router, s3_server):
    router.set_traffic(a=0.5, b=0.5, data_size=5000, drift_cols=[])
    rc, log = run_dag(stack, "run1", seed=SEED)
    assert rc == 0, log[-3000:]
    assert registry.aliases()["champion"] == "1"
    profile = registry.load_profile("1")
    assert set(profile.features) == {
        "carat",
        "cut",
        "color",
        "clarity",
        "depth",
        "table",
        "x",
        "y",
        "z",
    }
    assert profile.n_rows == 5000
    # model artifacts and staged frames went to the S3 server, not to local folders
    client = s3_server["client"]
    assert any(o.object_name for o in client.list_objects("mlflow-artifacts", recursive=True))
    staged = [o.object_name for o in client.list_objects("dethrone-staging", recursive=True)]
    assert any(name.endswith("training.parquet") for name in staged)


def test_run_without_drift_ends_without_training(stack, registry, router, settings):
    router.set_traffic(drift_cols=[])
    before = versions(registry)
    rc, log = run_dag(stack, "run3", seed=SEED + 1)
    assert rc == 0, log[-3000:]
    drift = latest_run(registry, settings.experiment_name, "drift-check")
    assert DriftVerdict.from_tags(drift.data.tags).drifted is False
    assert versions(registry) == before
    dag_run = RunIdentity.from_tags(drift.data.tags).dag_run_id
    trained = registry.client.search_runs(
        [registry.client.get_experiment_by_name(settings.experiment_name).experiment_id],
        filter_string=f"tags.`{RunIdentity.tag('dag_run_id')}` = '{dag_run}'"
        f" and tags.`{RunIdentity.tag('role')}` = 'challenger'",
    )
    assert list(trained) == []


def _expected_outcome(decision: dict) -> str:
    """The outcome the logged statistics imply, re-derived from the decision record."""
    if decision["srm"]["pvalue"] < decision["srm_threshold"]:
        return "inconclusive"
    unpaired, paired = decision["unpaired"], decision["paired"]
    if min(unpaired["n_a"], unpaired["n_b"]) < decision["min_rows_per_arm"]:
        return "inconclusive"
    permutation = decision.get("permutation")
    better = (
        unpaired["pvalue"] < decision["alpha"]
        and (paired is None or paired["pvalue"] < decision["alpha"])
        and (permutation is None or permutation["pvalue"] < decision["alpha"])
    )
    guard_ok = not any(g.get("failed") for g in decision["guardrails"].values())
    return "promote" if better and guard_ok else "keep"


def test_run2_detects_drift_challenges_and_decides(stack, registry, router, settings):
    import mlflow.artifacts

    router.set_traffic(drift_cols=["carat", "color"])
    rc, log = run_dag(stack, "run2", seed=SEED)
    assert rc == 0, log[-3000:]
    drift = latest_run(registry, settings.experiment_name, "drift-check")
    assert DriftVerdict.from_tags(drift.data.tags).drifted_features == ["carat", "color"]
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{drift.info.run_id}/drift/report.json"))
    assert sorted(report["drifted_features"]) == ["carat", "color"]
    html = mlflow.artifacts.load_text(f"runs:/{drift.info.run_id}/drift/report.html")
    assert "carat" in html and "<svg" in html
    challenger = registry.find_registered(
        RunIdentity.from_tags(drift.data.tags).dag_run_id, "challenger"
    )
    assert challenger is not None and str(challenger.version) == "2"
    comparison = latest_run(registry, settings.comparison_name, "ab-test")
    record = Decision.from_tags(comparison.data.tags)
    decision = json.loads(
        mlflow.artifacts.load_text(f"runs:/{comparison.info.run_id}/comparison/decision.json")
    )
    assert decision["outcome"] == record.outcome
    # the split the SRM gate tested came with the A/B rows, and is recorded
    assert record.expected_share_a == 0.5 and record.config_version is not None
    assert decision["outcome"] == _expected_outcome(decision)
    assert decision["paired"] is not None  # held-out rows scored by both models
    assert {"a_mean_loss", "b_mean_loss"} <= set(comparison.data.metrics)
    artifacts = {
        a.path for a in registry.client.list_artifacts(comparison.info.run_id, "comparison")
    }
    assert "comparison/errors.png" in artifacts
    aliases = registry.aliases()
    if decision["outcome"] == "promote":
        assert aliases["champion"] == "2" and aliases["previous-champion"] == "1"
    else:
        assert aliases["champion"] == "1"
    assert Decision.from_tags(registry.model_version("2").tags).outcome == decision["outcome"]


def test_equal_quality_challenger_is_not_promoted(stack, registry, router, settings):
    champion = registry.aliases()["champion"]
    rc, log = run_dag(stack, "run_aa", seed=SEED + 2, force_challenger=True)
    assert rc == 0, log[-3000:]
    record = Decision.from_tags(latest_run(registry, settings.comparison_name, "ab-test").data.tags)
    assert record.champion_version == champion
    assert record.outcome != "promote"
    assert registry.aliases()["champion"] == champion


def test_mlflow_down_fails_clearly_and_leaves_aliases(stack, registry):
    before = registry.aliases()
    mlflow_info = stack.info("mlflow")
    stack.stop("mlflow")
    try:
        rc, log = run_dag(stack, "run_mlflow_down", seed=SEED + 3)
        assert rc != 0
        assert f"MLflow tracking server at {mlflow_info.url} is not reachable" in log
    finally:
        stack.start_mlflow(mlflow_info.port, artifacts_destination="s3://mlflow-artifacts")
    assert registry.aliases() == before


def test_rollback_command_restores_previous_champion(stack, registry, settings):
    import os
    import subprocess
    import sys

    aliases = registry.aliases()
    if aliases["previous-champion"] is None:
        # run 2 kept the champion: promote the challenger by hand so there is a previous one
        registry.promote("2", Decision(outcome="manual"))
        aliases = registry.aliases()
    # the real console command, in its own process, as a user would run it
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "MODEL_NAME": settings.model_name,
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dethrone", "rollback", "--reason", "test"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    after = registry.aliases()
    assert after["champion"] == aliases["previous-champion"]
    assert after["previous-champion"] == aliases["champion"]
