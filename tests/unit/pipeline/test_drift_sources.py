"""The drift check on what the champion served: the prediction log as DRIFT_SOURCE, with
prediction drift and live performance beside the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dethrone.pipeline import steps as pipeline
from dethrone.pipeline.sources import LOSS, PREDICTION, log_frame, read_table, source_kind
from dethrone.slices.injection import apply_drift


def _check(ctx):
    data = pipeline.fetch_data(ctx, dag_run_id="r2", purpose="current", pin_champion=True)
    assert data["source"] == "log" and data["window"] == ctx.settings.drift_window
    return pipeline.check_drift(ctx, data_uri=data["uri"], champion_version="1", dag_run_id="r2")


def test_undrifted_served_traffic_is_not_drift(champion, diamonds, serve):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=11)
    serve(ctx, engine, served, labels=True, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert verdict["drifted"] is False, verdict
    assert verdict["prediction"]["drifted"] is False
    assert verdict["performance"]["drifted"] is False and verdict["performance"]["rows"] == 1500


def test_drift_injected_into_served_traffic_is_found(champion, diamonds, serve):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=12).reset_index(drop=True)
    drifted = apply_drift(
        served,
        ["carat", "color"],
        rng=np.random.default_rng(3),
    )
    serve(ctx, engine, drifted, labels=False, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert set(verdict["drifted_features"]) == {"carat", "color"} and verdict["drifted"]
    # the seed's drift scales half the carats by U(0.1, 2): up as often as down, so the
    # answers barely move (KS 0.047 here); no labels came back: no performance check
    assert "statistic" in verdict["prediction"] and "performance" not in verdict


def test_a_shift_in_the_answers_is_prediction_drift(champion, diamonds, serve):
    ctx, engine = champion
    served = diamonds.sample(1500, random_state=13).reset_index(drop=True)
    served = served.assign(carat=served["carat"] * 1.25)  # bigger stones, higher prices
    serve(ctx, engine, served, labels=True, now=pd.Timestamp.now().timestamp())
    verdict = _check(ctx)
    assert verdict["prediction"]["drifted"] is True, verdict["prediction"]
    assert verdict["features"]["carat"]["drifted"] is True


def test_rows_outside_the_window_or_of_another_version_are_not_read(champion, diamonds, serve):
    ctx, engine = champion
    now = pd.Timestamp.now().timestamp()
    serve(ctx, engine, diamonds.sample(50, random_state=1), labels=False, now=now - 3 * 86400)
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
