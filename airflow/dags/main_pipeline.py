"""main_pipeline: keep the best model in production.

check_champion ─┬─ (none) fetch_training_data → train_model → register_model → set_champion
                └─ (exists) fetch_current_data → detect_drift → drift_branch ─┬─ no_drift
                                                                             └─ train_challenger
    train_challenger → register_challenger → ab_test → decision_branch ─┬─ promote_challenger
                                                                       ├─ start_live_experiment
                                                                       └─ keep_champion

With the param ``live`` the offline A/B test is a pre-screen: a challenger it would promote
starts a live experiment instead (``live_mode`` ab or shadow, ``live_split`` its traffic
share), which the ``live_experiment`` DAG decides on live labelled traffic.

The DAG is only wiring: every task calls one step of ``dethrone.pipeline.steps`` through
:func:`_step`, which builds the run's context (settings = environment overridden by the
run's params, plus the registry, router client and stager) and turns errors that a retry
cannot fix into an immediate failure. Airflow injects ``params`` and ``run_id`` into each
task. Nothing is imported from dethrone, and nothing is read or fetched, at parse time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException


def _param(description: str, kind: str) -> Param:
    # None means "use the setting from the environment".
    return Param(None, type=["null", kind], description=description)


PARAMS = {
    "ks_pvalue_threshold": _param("KS drift p-value threshold (KS_PVALUE_THRESHOLD)", "number"),
    "psi_threshold": _param("PSI drift threshold (PSI_THRESHOLD)", "number"),
    "ks_min_effect": _param("minimum KS statistic for numeric drift", "number"),
    "ab_alpha": _param("significance level of the A/B test", "number"),
    "ab_margin": _param("challenger must beat the champion by more than this", "number"),
    "ab_min_rows_per_arm": _param("fewer rows per arm gives inconclusive", "integer"),
    "guardrail_margin": _param("relative worsening allowed on the guardrail", "number"),
    "cv_folds": _param("k of the k-fold cross-validation", "integer"),
    "random_state": _param("seed of training and bootstrap", "integer"),
    "seed": _param("base seed of the router slices (default: RANDOM_STATE)", "integer"),
    "force_challenger": Param(
        False,
        type="boolean",
        description="train and A/B test a challenger even without drift (an A/A check)",
    ),
    "live": Param(
        False,
        type="boolean",
        description="start a live experiment instead of promoting on the offline "
        "A/B test (which becomes a pre-screen)",
    ),
    "live_mode": Param(
        "ab",
        type="string",
        enum=["ab", "shadow"],
        description="live experiment mode: split traffic, or shadow",
    ),
    "live_split": Param(
        0.5,
        type="number",
        exclusiveMinimum=0.0,
        exclusiveMaximum=1.0,
        description="challenger's share of live traffic (mode ab)",
    ),
    "holdout_share": Param(
        0.2,
        type="number",
        minimum=0.0,
        maximum=0.5,
        description="share of the current slice held out of the "
        "challenger's training for the paired test",
    ),
}


def _step(name: str, params: dict, **kwargs):
    """Run ``dethrone.pipeline.steps.<name>`` with a fresh context; no retries for bad input."""
    # lazy: Airflow parses this file every 30 s; dethrone (pandas, mlflow) loads when a task runs
    from dethrone.pipeline import steps as pipeline
    from dethrone.pipeline.context import PipelineContext

    try:
        ctx = PipelineContext.from_settings(pipeline.settings_from_params(params))
        return getattr(pipeline, name)(ctx, **kwargs)
    except Exception as exc:
        if pipeline.is_permanent(exc):
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        raise


@dag(
    dag_id="main_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["dethrone"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=5),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=20),
    },
    doc_md=__doc__,
)
def main_pipeline():
    @task.branch
    def check_champion(params=None) -> str:
        found = _step("check_champion", params)["champion_version"]
        return "fetch_current_data" if found else "fetch_training_data"

    # --- no champion yet: train the first one ----------------------------------------
    @task
    def fetch_training_data(params=None, run_id=None) -> dict:
        return _step(
            "fetch_data", params, dag_run_id=run_id, purpose="training", seed=params.get("seed")
        )

    @task
    def train_model(data: dict, params=None, run_id=None) -> dict:
        return _step(
            "train_model", params, data_uri=data["uri"], dag_run_id=run_id, role="champion"
        )

    @task
    def register_model(trained: dict, params=None, run_id=None) -> dict:
        return _step(
            "register_model", params, run_id=trained["run_id"], dag_run_id=run_id, role="champion"
        )

    @task
    def set_champion(registered: dict, params=None, run_id=None) -> dict:
        return _step("first_champion", params, version=registered["version"], dag_run_id=run_id)

    # --- champion exists: check drift, maybe challenge it ----------------------------
    @task
    def fetch_current_data(params=None, run_id=None) -> dict:
        return _step(
            "fetch_data",
            params,
            dag_run_id=run_id,
            purpose="current",
            seed=params.get("seed"),
            pin_champion=True,
        )

    @task
    def detect_drift(current: dict, params=None, run_id=None) -> dict:
        return _step(
            "check_drift",
            params,
            data_uri=current["uri"],
            dag_run_id=run_id,
            champion_version=current["champion_version"],
        )

    @task.branch
    def drift_branch(drift: dict, params=None) -> str:
        if drift["drifted"] or params.get("force_challenger"):
            return "train_challenger"
        return "no_drift"

    @task
    def no_drift(drift: dict) -> dict:
        return {"outcome": "no-drift", "champion_version": drift["champion_version"]}

    @task
    def train_challenger(current: dict, params=None, run_id=None) -> dict:
        return _step(
            "train_model",
            params,
            data_uri=current["uri"],
            dag_run_id=run_id,
            role="challenger",
            holdout_share=float(params.get("holdout_share") or 0),
        )

    @task
    def register_challenger(trained: dict, params=None, run_id=None) -> dict:
        out = _step(
            "register_model",
            params,
            run_id=trained["run_id"],
            dag_run_id=run_id,
            role="challenger",
            alias="challenger",
        )
        return {**out, "holdout_uri": trained["holdout_uri"]}

    @task
    def ab_test(current: dict, challenger: dict, params=None, run_id=None) -> dict:
        return _step(
            "ab_test",
            params,
            champion_version=current["champion_version"],
            challenger_version=challenger["version"],
            dag_run_id=run_id,
            holdout_uri=challenger["holdout_uri"],
            seed=params.get("seed"),
        )

    @task.branch
    def decision_branch(decision: dict, params=None) -> str:
        if decision["outcome"] != "promote":
            return "keep_champion"
        return "start_live_experiment" if params.get("live") else "promote_challenger"

    @task
    def start_live_experiment(decision: dict, params=None, run_id=None) -> dict:
        # Idempotent per DAG run: a retry finds the experiment this run started.
        return _step(
            "start_live",
            params,
            challenger_version=decision["challenger_version"],
            dag_run_id=run_id,
            mode=params.get("live_mode") or "ab",
            split=float(params.get("live_split") or 0.5),
        )

    @task
    def promote_challenger(decision: dict, params=None) -> dict:
        return _step("promote_challenger", params, decision=decision)

    @task
    def keep_champion(decision: dict) -> dict:
        # The decision is already logged and tagged on the challenger by ab_test.
        return {
            "outcome": decision["outcome"],
            "champion_version": decision["champion_version"],
            "reasons": decision["reasons"],
        }

    first = check_champion()
    training = fetch_training_data()
    first >> training
    set_champion(register_model(train_model(training)))

    current = fetch_current_data()
    first >> current
    drift = detect_drift(current)
    branch = drift_branch(drift)
    branch >> no_drift(drift)
    challenger_run = train_challenger(current)
    branch >> challenger_run
    decision = ab_test(current, register_challenger(challenger_run))
    chosen = decision_branch(decision)
    chosen >> [
        promote_challenger(decision),
        start_live_experiment(decision),
        keep_champion(decision),
    ]


main_pipeline()
