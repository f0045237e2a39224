"""Every step of dethrone.pipeline.steps on in-memory fakes: no network, no MLflow server."""

from __future__ import annotations

import numpy as np
import pytest

from dethrone.pipeline import steps as pipeline
from dethrone.registry.client import RegistryError
from dethrone.registry.records import CHALLENGER, CHAMPION, Decision
from dethrone.slices.router_client import RouterError
from tests.unit.pipeline_fakes import make_context


@pytest.fixture(scope="module")
def rows(diamonds):
    return diamonds.sample(600, random_state=5).reset_index(drop=True)


def _trained(ctx, dag_run_id="r1", role="champion", holdout_share=0.0):
    data = pipeline.fetch_data(ctx, dag_run_id=dag_run_id, purpose=role, seed=1)
    return pipeline.train_model(
        ctx, data_uri=data["uri"], dag_run_id=dag_run_id, role=role, holdout_share=holdout_share
    )


def _with_champion(rows, **settings):
    ctx = make_context(rows, **settings)
    trained = _trained(ctx)
    reg = pipeline.register_model(ctx, run_id=trained["run_id"], dag_run_id="r1", role="champion")
    pipeline.first_champion(ctx, version=reg["version"], dag_run_id="r1")
    return ctx


def _challenger(ctx, rows=None, dag_run_id="r2"):
    if rows is not None:
        ctx.router.frame = rows
    trained = _trained(ctx, dag_run_id, "challenger", holdout_share=0.2)
    reg = pipeline.register_model(
        ctx, run_id=trained["run_id"], dag_run_id=dag_run_id, role="challenger", alias=CHALLENGER
    )
    return reg["version"], trained["holdout_uri"]


def test_check_champion_without_and_with_a_champion(rows):
    ctx = make_context(rows)
    assert pipeline.check_champion(ctx) == {"champion_version": None}
    ctx = _with_champion(rows)
    assert pipeline.check_champion(ctx) == {"champion_version": "1"}


def test_fetch_data_stages_the_slice_and_can_pin_the_champion(rows):
    ctx = _with_champion(rows)
    out = pipeline.fetch_data(ctx, dag_run_id="r9", purpose="current", seed=4, pin_champion=True)
    assert out["rows"] == len(rows) and out["champion_version"] == "1"
    assert out["seed"] == pipeline.run_seed("r9", "current", ctx.settings, 4)
    assert ctx.router.calls[-1] == ("get_data", out["seed"])
    assert ctx.stager.get(out["uri"]).equals(rows)


def test_fetch_data_without_target_is_a_permanent_error(rows):
    ctx = make_context(rows.drop(columns=["price"]))
    with pytest.raises(ValueError, match="no target column 'price'") as err:
        pipeline.fetch_data(ctx, dag_run_id="r1", purpose="training")
    assert pipeline.is_permanent(err.value)


def test_train_model_holds_out_rows_and_logs_the_run(rows):
    ctx = make_context(rows)
    out = _trained(ctx, holdout_share=0.25)
    held = ctx.stager.get(out["holdout_uri"])
    assert out["rows"] + len(held) == len(rows) and 100 < len(held) < 200
    kind, logged = ctx.tracker.logged[-1]
    assert kind == "training" and logged["run_id"] == out["run_id"]
    assert logged["data_uri"].startswith("mem://runs/r1/")
    assert ctx.registry.fake.runs[out["run_id"]]  # model info tags written


def test_register_model_is_idempotent_and_never_sets_champion(rows):
    ctx = make_context(rows)
    trained = _trained(ctx)
    first = pipeline.register_model(
        ctx, run_id=trained["run_id"], dag_run_id="r1", role="challenger", alias=CHALLENGER
    )
    again = pipeline.register_model(
        ctx, run_id=trained["run_id"], dag_run_id="r1", role="challenger", alias=CHALLENGER
    )
    assert first == again
    assert ctx.registry.aliases()[CHALLENGER] == first["version"]
    with pytest.raises(ValueError, match="change @champion"):
        pipeline.register_model(
            ctx, run_id=trained["run_id"], dag_run_id="r1", role="champion", alias=CHAMPION
        )


def test_first_champion_records_why(rows):
    ctx = _with_champion(rows)
    tags = ctx.registry.model_version("1").tags
    record = Decision.from_tags(tags)
    assert record.outcome == "first-champion" and record.dag_run_id == "r1"
    assert ctx.registry.aliases() == {
        "champion": "1",
        "challenger": None,
        "previous-champion": None,
    }


def test_check_drift_uses_the_champions_profile(rows):
    ctx = _with_champion(rows)
    same = pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current")
    verdict = pipeline.check_drift(ctx, data_uri=same["uri"], champion_version="1", dag_run_id="r2")
    assert verdict["drifted"] is False and verdict["run_id"].startswith("drift-")
    shifted = rows.assign(carat=rows["carat"] * 3)
    uri = ctx.stager.put(shifted, "shifted")
    verdict = pipeline.check_drift(ctx, data_uri=uri, champion_version="1", dag_run_id="r3")
    assert verdict["drifted"] is True and "carat" in verdict["drifted_features"]


def test_check_drift_without_mlflow_log_logs_nothing(rows):
    ctx = _with_champion(rows, mlflow_log=False)
    data = pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current")
    verdict = pipeline.check_drift(ctx, data_uri=data["uri"], champion_version="1", dag_run_id="r2")
    assert verdict["run_id"] is None
    assert [k for k, _ in ctx.tracker.logged] == ["training"]


def test_ab_test_takes_the_split_from_the_ab_data_answer(rows):
    # The router's /traffic says 50/50 but the A/B rows were cut 70/30: the SRM gate
    # must test 70/30 (the split of the same answer), not a separately read config.
    ctx = _with_champion(rows)
    version, holdout = _challenger(ctx)
    ctx.router.share_a, ctx.router.config_version = 0.7, "12"
    out = pipeline.ab_test(
        ctx,
        champion_version="1",
        challenger_version=version,
        dag_run_id="r2",
        holdout_uri=holdout,
        seed=1,
    )
    assert ("get_traffic", None) not in ctx.router.calls
    assert out["expected_share_a"] == 0.7 and out["config_version"] == "12"
    _, logged = ctx.tracker.logged[-1]
    assert logged["decision"].srm.expected_share_a == 0.7
    assert logged["decision"].srm.mismatch is False
    recorded = Decision.from_tags(ctx.registry.model_version(version).tags)
    assert recorded.expected_share_a == 0.7 and recorded.config_version == "12"
    assert recorded.comparison_run_id == out["comparison_run_id"]


@pytest.mark.parametrize("share_a", [1.0, 0.0])
def test_ab_test_with_an_empty_arm_says_which_and_why(rows, share_a):
    # e.g. a = 1, b = 0 set by hand: a clear refusal, not scikit-learn scoring zero rows
    ctx = _with_champion(rows)
    version, _ = _challenger(ctx)
    ctx.router.share_a = share_a
    arm = "B" if share_a == 1.0 else "A"
    with pytest.raises(ValueError, match=f"arm {arm} no rows.*POST /traffic"):
        pipeline.ab_test(
            ctx, champion_version="1", challenger_version=version, dag_run_id="r2", seed=1
        )
    assert pipeline.is_permanent(ValueError("x"))  # so Airflow does not retry it


def test_ab_test_scores_each_model_with_its_own_features(rows):
    ctx = _with_champion(rows.drop(columns=["depth", "table"]))
    version, holdout = _challenger(ctx, rows)  # the challenger knows two more columns
    out = pipeline.ab_test(
        ctx,
        champion_version="1",
        challenger_version=version,
        dag_run_id="r2",
        holdout_uri=holdout,
        seed=1,
    )
    assert out["a_rows"] + out["b_rows"] == len(rows)
    assert np.isfinite(out["a_mean_loss"]) and np.isfinite(out["b_mean_loss"])


def test_ab_test_chooses_losses_by_name_not_by_order(rows, monkeypatch):
    real = pipeline.losses
    monkeypatch.setattr(pipeline, "losses", lambda *a: dict(reversed(list(real(*a).items()))))
    ctx = _with_champion(rows)
    version, _ = _challenger(ctx)
    out = pipeline.ab_test(
        ctx, champion_version="1", challenger_version=version, dag_run_id="r2", seed=1
    )
    assert out["loss"] == "absolute_error"
    _, logged = ctx.tracker.logged[-1]
    assert set(logged["decision"].guardrails) == {"squared_error"}


def test_promote_challenger_copies_only_decision_fields(rows):
    ctx = _with_champion(rows)
    version, _ = _challenger(ctx)
    decision = {
        "outcome": "promote",
        "challenger_version": version,
        "pvalue": 0.001,
        "reasons": ["better"],
        "a_rows": 10,
        "b_mean_loss": 1.0,
    }
    assert pipeline.promote_challenger(ctx, decision=decision) == {
        "champion": version,
        "previous": "1",
    }
    tags = ctx.registry.model_version(version).tags
    assert Decision.from_tags(tags).pvalue == 0.001
    assert not any("a_rows" in k or "b_mean_loss" in k for k in tags)
    assert ctx.registry.aliases() == {
        "champion": version,
        "challenger": None,
        "previous-champion": "1",
    }


def test_promote_challenger_refuses_other_outcomes(rows):
    ctx = _with_champion(rows)
    with pytest.raises(ValueError, match="refusing to promote on outcome 'keep'"):
        pipeline.promote_challenger(ctx, decision={"outcome": "keep", "challenger_version": "1"})


@pytest.mark.parametrize(
    "exc, permanent",
    [
        (ValueError("schema mismatch"), True),
        (KeyError("features"), True),
        (TypeError("bad param"), True),
        (RouterError("HTTP 400: bad seed"), True),
        (RouterError("unreachable after 4 attempts", permanent=False), False),
        (RegistryError("MLflow did not answer"), False),
        (RegistryError("no model info", permanent=True), True),
        (ConnectionError("refused"), False),
        (TimeoutError("slow"), False),
        (RuntimeError("server error"), False),
    ],
)
def test_is_permanent(exc, permanent):
    assert pipeline.is_permanent(exc) is permanent


def test_start_live_starts_one_experiment_per_dag_run(rows, tmp_path, monkeypatch):
    from dethrone.experiments import lifecycle as experiment
    from dethrone.experiments import tracking as experiment_tracking
    from tests.unit.experiments.test_lifecycle import FakeLiveTracker

    tracker = FakeLiveTracker()
    monkeypatch.setattr(experiment_tracking, "Tracker", lambda settings: tracker)
    ctx = _with_champion(rows, router_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}")
    version, _ = _challenger(ctx)
    out = pipeline.start_live(ctx, challenger_version=version, dag_run_id="r2", split=0.25)
    again = pipeline.start_live(ctx, challenger_version=version, dag_run_id="r2", split=0.25)
    assert again["id"] == out["id"] and out["state"] == "running" and len(tracker.runs) == 1
    assert ctx.router.config == {
        "mode": "ab",
        "a": 0.75,
        "b": 0.25,
        "salt": out["id"],
        "experiment": out["id"],
    }
    with pytest.raises(experiment.ExperimentError):
        pipeline.start_live(ctx, challenger_version=version, dag_run_id="r3")
