"""The drift monitor: what the champion served, checked on a schedule.

Every ``MONITOR_INTERVAL`` the ``monitor`` DAG calls :func:`monitor_once`: the champion's
served rows of the last ``DRIFT_WINDOW`` (the prediction log) against its reference
profile — features, its answers (prediction drift) and, where labels came back, its loss
(live performance) — with the drift check's tests, correction and thresholds. Each result
is recorded (MLflow when ``MLFLOW_LOG``, the drift report, the router's database for its
gauges and the serving page). With ``MONITOR_RETRAIN`` on, drift in ``MONITOR_CONSECUTIVE``
windows in a row asks for a ``main_pipeline`` run (off by default: one setting turns it
on). The log is pruned to ``LOG_RETENTION`` on the way.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from dethrone.pipeline.context import PipelineContext
from dethrone.pipeline.sources import TooFewRows
from dethrone.pipeline.steps import check_champion, check_drift, fetch_data
from dethrone.store.durations import parse_duration
from dethrone.store.export import prune
from dethrone.store.monitor import prune_results, save_result

__all__ = ["monitor_once"]


def monitor_once(
    ctx: PipelineContext, *, dag_run_id: str, engine: Any, now: float | None = None
) -> dict[str, Any]:
    """One check of the champion's served rows; returns the verdict and whether to retrain.

    ``engine`` is the router's database (the log and the results). A window with too few
    served rows is recorded as ``skipped``: it neither starts nor breaks a streak.
    """
    now = time.time() if now is None else now
    ctx = dataclasses.replace(ctx, settings=ctx.settings.replace(drift_source="log"))
    settings = ctx.settings
    pruned = _prune(engine, settings.log_retention, now)
    champion = check_champion(ctx)["champion_version"]
    if champion is None:
        return {"status": "skipped", "reason": "no @champion yet", "retrain": False, **pruned}
    try:
        data = fetch_data(ctx, dag_run_id=dag_run_id, purpose="current", pin_champion=True)
    except TooFewRows as exc:
        result: dict[str, Any] = {"reason": str(exc), "window": settings.drift_window}
        save_result(engine, result, status="skipped", champion_version=champion, now=now)
        return {"status": "skipped", **result, "retrain": False, **pruned}
    result = check_drift(
        ctx, data_uri=data["uri"], champion_version=champion, dag_run_id=dag_run_id
    )
    result = {**result, "window": settings.drift_window, "rows": data["rows"]}
    streak = save_result(
        engine,
        result,
        status="checked",
        champion_version=champion,
        run_id=result.get("run_id"),
        now=now,
    )
    retrain = bool(settings.monitor_retrain and streak >= settings.monitor_consecutive)
    return {
        "status": "checked",
        "drifted": result["drifted"],
        "drifted_features": result["drifted_features"],
        "prediction_drifted": bool(result.get("prediction", {}).get("drifted", False)),
        "performance_drifted": bool(result.get("performance", {}).get("drifted", False)),
        "consecutive": streak,
        "retrain": retrain,
        "champion_version": champion,
        "run_id": result.get("run_id"),
        **pruned,
    }


def _prune(engine: Any, retention: str, now: float) -> dict[str, Any]:
    """Delete logged rows (with their labels) and monitor results past ``LOG_RETENTION``."""
    if retention.strip() in ("", "0"):
        return {"pruned_rows": 0}

    age = parse_duration(retention, name="LOG_RETENTION")
    done = prune(engine, older_than=age, now=now)
    prune_results(engine, older_than=now - age)
    return {"pruned_rows": done.predictions}
