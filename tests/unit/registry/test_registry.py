"""Registry on a real (SQLite-backed) MLflow store: registration, signature, artifacts.

Every test builds the aliases it needs itself (on its own model name), so any one test
passes alone and in any order. Promotion and rollback under cut connections are tested
on the in-memory client in ``test_registry_promotion.py``.
"""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from dethrone.registry.records import Decision, Replacement, RollbackRecord, RunIdentity
from dethrone.settings import Settings

_names = itertools.count(1)


@pytest.fixture(scope="module")
def env(tmp_path_factory, diamonds):
    from dethrone.drift import ReferenceProfile
    from dethrone.pipeline.context import configure_mlflow
    from dethrone.pipeline.training import train
    from dethrone.registry.mlflow_logging import log_training_run

    root = tmp_path_factory.mktemp("mlflow")
    settings = Settings(
        mlflow_tracking_uri=f"sqlite:///{root}/mlflow.db",
        model_name="unit-model",
        experiment_name="unit-training",
        cv_folds=2,
        dethrone_home=str(root),
    )
    # artifacts of the sqlite store go to ./mlruns relative to the working directory
    patch = pytest.MonkeyPatch()
    patch.chdir(root)
    configure_mlflow(settings)
    frames, runs = [], []
    for seed in (1, 2, 3):
        frame = diamonds.sample(400, random_state=seed).reset_index(drop=True)
        result = train(frame, settings, only=["ridge"])
        profile = ReferenceProfile.from_frame(
            frame, features=result.features, categorical=result.categorical, settings=settings
        )
        runs.append(
            log_training_run(
                result, frame, profile, settings, dag_run_id=f"run-{seed}", role="candidate"
            )
        )
        frames.append(frame)
    yield settings, frames, runs
    patch.undo()


@pytest.fixture
def reg(env):
    """A Registry on a model name of its own."""
    from dethrone.registry.client import Registry

    settings = env[0].replace(model_name=f"unit-model-{next(_names)}")
    return Registry(settings)


def test_no_champion_yet(reg):
    assert reg.alias_version("champion") is None
    assert reg.aliases() == {"champion": None, "challenger": None, "previous-champion": None}
    assert reg.pending_promotion() is None


def test_registration_is_idempotent_per_dag_run(env, reg):
    _, _, runs = env
    first = reg.register(runs[0], dag_run_id="run-1", role="champion")
    retried = reg.register(runs[0], dag_run_id="run-1", role="champion")
    assert first.version == retried.version
    versions = reg.client.search_model_versions(f"name = '{reg.name}'")
    assert len(versions) == 1
    assert RunIdentity.from_tags(first.tags) == RunIdentity(role="champion", dag_run_id="run-1")


def test_version_has_signature_profile_and_training_data(env, reg):
    from mlflow.models import get_model_info

    _, frames, runs = env
    mv = reg.register(runs[0], dag_run_id="run-1", role="champion")
    info = reg.model_info(mv.version)
    model_info = get_model_info(f"models:/{reg.name}/{mv.version}")
    assert {c["name"] for c in model_info.signature.inputs.to_dict()} == set(info.features)
    profile = reg.load_profile(mv.version)
    assert set(profile.features) == set(info.features)
    assert profile.n_rows == len(frames[0])
    pd.testing.assert_frame_equal(reg.load_training_data(mv.version), frames[0])
    model = reg.load_model(mv.version)
    assert (
        len(
            model.predict(
                frames[0][info.features].head(3).astype({c: str for c in info.categorical})
            )
        )
        == 3
    )


def _three_versions(env, reg) -> list[str]:
    _, _, runs = env
    return [
        str(reg.register(run, dag_run_id=f"run-{i}", role="candidate").version)
        for i, run in enumerate(runs)
    ]


def test_promotion_keeps_previous_and_records_decision(env, reg):
    v1, v2, _ = _three_versions(env, reg)
    assert reg.promote(v1, Decision(outcome="first-champion")) == {"champion": v1, "previous": None}
    reg.set_alias("challenger", v2)
    out = reg.promote(
        v2, Decision(outcome="promote", pvalue=0.001, ci=[1.0, 2.0], comparison_run_id="abc")
    )
    assert out == {"champion": v2, "previous": v1}
    assert reg.aliases() == {"champion": v2, "challenger": None, "previous-champion": v1}
    record = Decision.from_tags(reg.model_version(v2).tags)
    assert (record.outcome, record.comparison_run_id, record.ci) == ("promote", "abc", [1.0, 2.0])
    assert Replacement.from_tags(reg.model_version(v1).tags).replaced_by == v2
    assert reg.pending_promotion() is None


def test_rollback_restores_previous_champion(env, reg):
    v1, v2, _ = _three_versions(env, reg)
    reg.promote(v1)
    reg.promote(v2)
    assert reg.rollback("bad release") == {"champion": v1, "previous": v2}
    assert reg.aliases()["champion"] == v1 and reg.aliases()["previous-champion"] == v2
    assert RollbackRecord.from_tags(reg.model_version(v2).tags).reason == "bad release"
    assert RollbackRecord.from_tags(reg.model_version(v1).tags).restored is True


def test_rollback_without_previous_is_an_error(reg):
    from dethrone.registry.client import RegistryError

    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback()


def test_unreachable_tracking_server_fails_fast():
    import time

    from dethrone.pipeline.context import configure_mlflow
    from dethrone.registry.client import RegistryError

    start = time.monotonic()
    with pytest.raises(RegistryError, match="not reachable"):
        configure_mlflow(Settings(mlflow_tracking_uri="http://127.0.0.1:9"))
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("task", ["regression", "classification"])
def test_a_model_trained_elsewhere_gets_its_contract_from_its_signature(env, reg, task):
    # Bring your own challenger: no dethrone tags on its run, only MLflow's signature.
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import make_column_transformer
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = env[1][0]
    X = frame[["carat", "cut", "depth"]].astype({"cut": str})
    y = frame["price"] if task == "regression" else frame["color"].astype(str)
    estimator = DummyRegressor() if task == "regression" else DummyClassifier()
    encode = make_column_transformer((OneHotEncoder(), ["cut"]), remainder="passthrough")
    model = make_pipeline(encode, estimator).fit(X, y)
    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X.head(5), model.predict(X.head(5))),
            serialization_format="cloudpickle",
        )
    version = mlflow.register_model(logged.model_uri, reg.name).version
    info = reg.model_info(version)
    assert info.features == ["carat", "cut", "depth"] and info.categorical == ["cut"]
    assert info.numeric == ["carat", "depth"] and info.task == task
    assert info.target == env[0].target


def test_a_model_without_tags_or_signature_is_refused_by_name(reg):
    import mlflow
    import mlflow.sklearn
    from sklearn.dummy import DummyRegressor

    with mlflow.start_run():
        logged = mlflow.sklearn.log_model(
            DummyRegressor().fit([[0.0]], [1.0]), name="model", serialization_format="cloudpickle"
        )
    version = mlflow.register_model(logged.model_uri, reg.name).version
    from dethrone.registry.client import RegistryError

    with pytest.raises(RegistryError, match="neither dethrone's model info tags nor"):
        reg.model_info(version)
