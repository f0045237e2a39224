"""Registry on a real (SQLite-backed) MLflow store: aliases, idempotency, promotion, rollback."""

from __future__ import annotations

import pandas as pd
import pytest

from dethrone.settings import Settings


@pytest.fixture(scope="module")
def env(tmp_path_factory, diamonds):
    from dethrone.drift import ReferenceProfile
    from dethrone.mlflow_logging import log_training_run
    from dethrone.registry import Registry
    from dethrone.training import train

    root = tmp_path_factory.mktemp("mlflow")
    settings = Settings(mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
                        model_name="unit-model", experiment_name="unit-training",
                        cv_folds=2, dethrone_home=str(root))
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    # artifacts of the sqlite store go to ./mlruns relative to the working directory
    old = pytest.MonkeyPatch()
    old.chdir(root)
    reg = Registry(settings)
    frames, runs = [], []
    for seed in (1, 2, 3):
        frame = diamonds.sample(400, random_state=seed).reset_index(drop=True)
        result = train(frame, settings, only=["ridge"])
        profile = ReferenceProfile.from_frame(frame, features=result.features,
                                              categorical=result.categorical, settings=settings)
        runs.append(log_training_run(result, frame, profile, settings,
                                     dag_run_id=f"run-{seed}", role="candidate"))
        frames.append(frame)
    yield settings, reg, frames, runs
    old.undo()


def test_no_champion_yet(env):
    settings, reg, _, _ = env
    assert reg.version("champion") is None
    assert reg.aliases() == {"champion": None, "challenger": None, "previous-champion": None}


def test_registration_is_idempotent_per_dag_run(env):
    _, reg, _, runs = env
    first = reg.register(runs[0], dag_run_id="run-1", role="champion")
    retried = reg.register(runs[0], dag_run_id="run-1", role="champion")
    assert first.version == retried.version
    versions = reg.client.search_model_versions("name = 'unit-model'")
    assert len(versions) == 1
    assert first.tags["dethrone.dag_run_id"] == "run-1"


def test_version_has_signature_profile_and_training_data(env):
    from mlflow.models import get_model_info

    _, reg, frames, _ = env
    mv = reg.find_registered("run-1", "champion")
    info = get_model_info(f"models:/unit-model/{mv.version}")
    assert {c["name"] for c in info.signature.inputs.to_dict()} == set(
        reg.model_info(mv.version)["features"])
    profile = reg.load_profile(mv.version)
    assert set(profile.features) == set(reg.model_info(mv.version)["features"])
    assert profile.n_rows == len(frames[0])
    stored = reg.load_training_data(mv.version)
    pd.testing.assert_frame_equal(stored, frames[0])
    model = reg.load_model(mv.version)
    assert len(model.predict(frames[0][profile.features.keys()].head(3).astype(
        {c: str for c in ("cut", "color", "clarity")}))) == 3


def test_promotion_keeps_previous_and_records_decision(env):
    _, reg, _, runs = env
    v1 = reg.find_registered("run-1", "champion").version
    assert reg.promote(v1, {"outcome": "first-champion"}) == {"champion": str(v1),
                                                              "previous": None}
    v2 = reg.register(runs[1], dag_run_id="run-2", role="challenger").version
    reg.set_alias("challenger", v2)
    out = reg.promote(v2, {"outcome": "promote", "pvalue": 0.001, "ci": [1.0, 2.0],
                           "comparison_run_id": "abc"})
    assert out == {"champion": str(v2), "previous": str(v1)}
    assert reg.aliases() == {"champion": str(v2), "challenger": None,
                             "previous-champion": str(v1)}
    tags = reg.get(v2).tags
    assert tags["dethrone.decision.outcome"] == "promote"
    assert tags["dethrone.decision.comparison_run_id"] == "abc"
    assert tags["dethrone.decision.ci"] == "[1.0, 2.0]"
    assert reg.get(v1).tags["dethrone.replaced_by"] == str(v2)


def test_rollback_restores_previous_champion(env):
    _, reg, _, _ = env
    before = reg.aliases()
    out = reg.rollback("bad release")
    assert out == {"champion": before["previous-champion"], "previous": before["champion"]}
    assert reg.aliases()["champion"] == before["previous-champion"]
    assert reg.get(before["champion"]).tags["dethrone.rollback_reason"] == "bad release"


def test_rollback_without_previous_is_an_error(tmp_path):
    from dethrone.registry import Registry, RegistryError

    settings = Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path}/m.db", model_name="empty")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        Registry(settings).rollback()


def test_unreachable_tracking_server_fails_fast():
    import time

    from dethrone.registry import Registry, RegistryError

    start = time.monotonic()
    with pytest.raises(RegistryError, match="not reachable"):
        Registry(Settings(mlflow_tracking_uri="http://127.0.0.1:9"))
    assert time.monotonic() - start < 10
