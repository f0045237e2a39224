"""The drift check on what the champion served: the prediction log as DRIFT_SOURCE, with
prediction drift and live performance beside the features."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pandas as pd
import pytest
from sqlalchemy import insert

from dethrone.pipeline import steps as pipeline
from dethrone.pipeline.sources import LOSS, PREDICTION, log_frame, read_table, source_kind
from dethrone.pipeline.training import prepare_features
from dethrone.slices.injection import apply_drift
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions
from tests.unit.pipeline_fakes import make_context

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


@pytest.fixture(scope="module")
def rows(diamonds):
    return diamonds.sample(1500, random_state=7).reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(rows):
    """A context whose champion v1 was trained on ``rows`` (once per module: training is
    the slow part)."""
    ctx = make_context(rows, drift_source="log", drift_min_rows=100)
    data = pipeline.fetch_data(ctx, dag_run_id="r1", purpose="champion", seed=1)
    out = pipeline.train_model(ctx, data_uri=data["uri"], dag_run_id="r1", role="champion")
    reg = pipeline.register_model(ctx, run_id=out["run_id"], dag_run_id="r1", role="champion")
    pipeline.first_champion(ctx, version=reg["version"], dag_run_id="r1")
    return ctx


@pytest.fixture
def champion(trained, tmp_path):
    """The trained context with a prediction log of its own, and the log's engine."""
    url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    engine = make_engine(url)
    upgrade(engine)
    yield (
        dataclasses.replace(trained, settings=trained.settings.replace(router_database_url=url)),
        engine,
    )
    engine.dispose()


def _serve(ctx, engine, served: pd.DataFrame, *, labels: bool, now: float) -> None:
    """Log ``served`` as the gateway does: features, the champion's prediction, labels."""
    model = ctx.registry.load_model("1")
    info = ctx.registry.model_info("1")
    pred = model.predict(prepare_features(served, info.features, info.categorical))
    features = served[FEATURES].to_dict("records")
    log = [
        {
            "request_id": f"q{i}",
            "row": 0,
            "arm": "champion",
            "served": True,
            "model_version": "1",
            "salt": "",
            "ts": now - 60,
            "prediction": float(p),
            "features": orjson.loads(orjson.dumps(f, option=orjson.OPT_SERIALIZE_NUMPY)),
        }
        for i, (p, f) in enumerate(zip(pred, features, strict=True))
    ]
    with engine.begin() as conn:
        conn.execute(insert(predictions), log)
        if labels:
            conn.execute(
                insert(feedback),
                [
                    {"request_id": f"q{i}", "row": 0, "label": float(y), "received_at": now}
                    for i, y in enumerate(served["price"])
                ],
            )


def _check(ctx):
    data = pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current", pin_champion=True)
    assert data["source"] == "log" and data["window"] == ctx.settings.drift_window
    return pipeline.check_drift(ctx, data_uri=data["uri"], champion_version="1", dag_run_id="r2")


def test_undrifted_served_traffic_is_not_drift(champion, diamonds):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=11)
    _serve(ctx, engine, served, labels=True, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert verdict["drifted"] is False, verdict
    assert verdict["prediction"]["drifted"] is False
    assert verdict["performance"]["drifted"] is False and verdict["performance"]["rows"] == 1500


def test_drift_injected_into_served_traffic_is_found(champion, diamonds):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=12).reset_index(drop=True)
    drifted = apply_drift(
        served,
        ["carat", "color"],
        rng=np.random.default_rng(3),
    )
    _serve(ctx, engine, drifted, labels=False, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert set(verdict["drifted_features"]) == {"carat", "color"} and verdict["drifted"]
    # the seed's drift scales half the carats by U(0.1, 2): up as often as down, so the
    # answers barely move (KS 0.047 here); no labels came back: no performance check
    assert "statistic" in verdict["prediction"] and "performance" not in verdict


def test_a_shift_in_the_answers_is_prediction_drift(champion, diamonds):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=13).reset_index(drop=True)
    served = served.assign(carat=served["carat"] * 1.25)  # bigger stones, higher prices
    _serve(ctx, engine, served, labels=True, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert verdict["prediction"]["drifted"] is True, verdict["prediction"]
    assert verdict["features"]["carat"]["drifted"] is True


def test_rows_outside_the_window_or_of_another_version_are_not_read(champion, diamonds):
    ctx, engine = champion
    now = pd.Timestamp.now().timestamp()
    _serve(ctx, engine, diamonds.sample(50, random_state=1), labels=False, now=now - 3 * 86400)
    assert len(log_frame(engine, model_version="1", window="24h", target="price", now=now)) == 0
    assert len(log_frame(engine, model_version="2", window="30d", target="price", now=now)) == 0
    frame = log_frame(engine, model_version="1", window="30d", target="price", now=now)
    assert len(frame) == 50 and {PREDICTION, LOSS, "price", "carat"} <= set(frame.columns)


def test_too_few_served_rows_is_a_clear_error(champion):
    ctx, _ = champion
    with pytest.raises(ValueError, match="DRIFT_MIN_ROWS"):
        pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current", pin_champion=True)


def test_file_source(tmp_path, diamonds):
    path = tmp_path / "served.parquet"
    diamonds.head(10).to_parquet(path)
    assert source_kind(str(path)) == "file" and source_kind("router") == "router"
    assert len(read_table(str(path))) == 10
    with pytest.raises(ValueError, match="no such file"):
        read_table(str(tmp_path / "missing.csv"))
