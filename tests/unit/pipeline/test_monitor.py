"""The monitor: one check of what the champion served per window, a streak of drifted
windows, retraining only when turned on, and the log pruned to its retention."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dethrone.pipeline.monitor import monitor_once
from dethrone.slices.injection import apply_drift
from dethrone.store.monitor import latest

NOW = 2_000_000_000.0


def _with(ctx, **settings):
    return dataclasses.replace(ctx, settings=ctx.settings.replace(**settings))


def _drifted(diamonds, seed):
    rows = diamonds.sample(1000, random_state=seed).reset_index(drop=True)
    return apply_drift(rows, ["carat", "color"], rng=np.random.default_rng(seed))


def test_a_window_with_too_few_rows_is_skipped_and_recorded(champion):
    ctx, engine = champion
    out = monitor_once(ctx, dag_run_id="m1", engine=engine, now=NOW)
    assert out["status"] == "skipped" and not out["retrain"] and "DRIFT_MIN_ROWS" in out["reason"]
    assert latest(engine)["status"] == "skipped"


def test_undrifted_traffic_keeps_the_streak_at_zero(champion, diamonds, serve):
    ctx, engine = champion
    serve(ctx, engine, diamonds.sample(600, random_state=4), labels=True, now=NOW)
    out = monitor_once(_with(ctx, monitor_retrain=True), dag_run_id="m1", engine=engine, now=NOW)
    assert out["status"] == "checked" and out["drifted"] is False
    assert out["consecutive"] == 0 and out["retrain"] is False
    stored = latest(engine)
    assert stored["result"]["features"]["carat"]["method"] == "ks"
    assert stored["result"]["performance"]["rows"] == 600


@pytest.mark.parametrize("retrain", [False, True])
def test_drift_in_consecutive_windows_retrains_only_when_turned_on(
    champion, diamonds, serve, retrain
):
    ctx, engine = champion
    ctx = _with(ctx, monitor_retrain=retrain, monitor_consecutive=2, drift_window="1h")
    outs = []
    for i in range(2):  # two windows an hour apart, each with its own drifted traffic
        now = NOW + i * 3600
        serve(ctx, engine, _drifted(diamonds, i), labels=False, now=now)
        outs.append(monitor_once(ctx, dag_run_id=f"m{i}", engine=engine, now=now))
    assert [o["consecutive"] for o in outs] == [1, 2]
    assert all(o["drifted"] and set(o["drifted_features"]) <= {"carat", "color"} for o in outs)
    assert [o["retrain"] for o in outs] == [False, retrain]


def test_the_log_is_pruned_to_its_retention(champion, diamonds, serve):
    ctx, engine = champion
    serve(ctx, engine, diamonds.sample(150, random_state=5), labels=True, now=NOW - 40 * 86400)
    serve(ctx, engine, diamonds.sample(150, random_state=6), labels=False, now=NOW)
    out = monitor_once(_with(ctx, log_retention="30d"), dag_run_id="m1", engine=engine, now=NOW)
    assert out["pruned_rows"] == 150
