"""live_experiment: look at the running live experiment and act, every few minutes.

evaluate → check_rollback

``evaluate`` reads the joined prediction log of the running experiment, takes one
always-valid sequential look (``decide_sequential``), logs it to MLflow and acts: promote
(with a guardrail window and a holdback on the previous champion), keep, stop on a sample
ratio mismatch, or continue. ``check_rollback`` rolls a new champion back by itself when,
during the window, it is significantly worse than the holdback. Both do nothing when no
experiment is active, and a retried or re-run task never promotes or rolls back twice
(see ``dethrone.experiments.lifecycle``). The schedule is ``EXPERIMENT_CHECK_MINUTES``; nothing is
imported from dethrone, and nothing is read or fetched, at parse time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException


def _minutes() -> int:
    # The environment only (no settings import at parse time); bad values fall back to 5.
    raw = os.environ.get("EXPERIMENT_CHECK_MINUTES", "5").strip()
    return int(raw) if raw.isdigit() and int(raw) >= 1 else 5


def _live(name: str) -> dict:
    """Run ``dethrone.experiments.lifecycle.<name>`` with fresh collaborators.

    No retries for bad input.
    """
    # lazy: Airflow parses this file every 30 s; dethrone (pandas, mlflow) loads when a task runs
    from dethrone.experiments import lifecycle as experiment
    from dethrone.pipeline import steps as pipeline
    from dethrone.settings import Settings

    try:
        ctx = experiment.ExperimentContext.from_settings(Settings.from_env())
        try:
            return getattr(experiment, name)(ctx)
        finally:
            ctx.engine.dispose()
    except Exception as exc:
        if pipeline.is_permanent(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


@dag(
    dag_id="live_experiment",
    schedule=timedelta(minutes=_minutes()),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one look at a time: looks are ordered and never race an action
    tags=["dethrone"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "execution_timeout": timedelta(minutes=10),
    },
    doc_md=__doc__,
)
def live_experiment():
    @task
    def evaluate() -> dict:
        return _live("evaluate_experiment")

    @task
    def check_rollback(looked: dict) -> dict:
        return _live("check_rollback")

    check_rollback(evaluate())


live_experiment()
