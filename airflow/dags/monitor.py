"""monitor: check what the champion served for drift, every MONITOR_INTERVAL.

check → retrain_branch ─┬─ retrain (starts main_pipeline)
                        └─ no_retrain

``check`` reads the champion's served rows of the last ``DRIFT_WINDOW`` from the prediction
log and runs the drift check on them (features, the champion's answers, and its loss where
labels came back), records the result (MLflow, the router's database: its gauges and the
serving page) and prunes the log to ``LOG_RETENTION``. With ``MONITOR_RETRAIN`` on, drift
found in ``MONITOR_CONSECUTIVE`` windows in a row starts ``main_pipeline`` (retraining).
See ``dethrone.pipeline.monitor``. The schedule comes from the environment only; nothing is
imported from dethrone, and nothing is read or fetched, at parse time.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _interval() -> timedelta:
    # MONITOR_INTERVAL as the settings parse it (30m, 1h, 1d); bad values fall back to 1h.
    match = re.fullmatch(
        r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", os.environ.get("MONITOR_INTERVAL", "")
    )
    seconds = float(match[1]) * _UNITS[(match[2] or "s").lower()] if match else 0.0
    return timedelta(seconds=seconds) if seconds >= 60 else timedelta(hours=1)


@dag(
    dag_id="monitor",
    schedule=_interval(),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["dethrone"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(minutes=30),
    },
    doc_md=__doc__,
)
def monitor():
    @task
    def check(run_id=None) -> dict:
        # lazy: Airflow parses this file every 30 s; dethrone loads when the task runs
        from dethrone.pipeline import steps
        from dethrone.pipeline.context import PipelineContext
        from dethrone.pipeline.monitor import monitor_once
        from dethrone.settings import Settings
        from dethrone.store import database_url, make_engine

        settings = Settings.from_env()
        engine = make_engine(database_url(settings))
        try:
            ctx = PipelineContext.from_settings(settings)
            return monitor_once(ctx, dag_run_id=run_id, engine=engine)
        except Exception as exc:
            if steps.is_permanent(exc):
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            raise
        finally:
            engine.dispose()

    @task.branch
    def retrain_branch(result: dict) -> str:
        return "retrain" if result.get("retrain") else "no_retrain"

    retrain = TriggerDagRunOperator(
        task_id="retrain",
        trigger_dag_id="main_pipeline",
        conf={"force_challenger": True},
        wait_for_completion=False,
    )
    retrain_branch(check()) >> [retrain, EmptyOperator(task_id="no_retrain")]


monitor()
