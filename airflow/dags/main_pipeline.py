"""main_pipeline: keep the best model in production.

check_champion ─┬─ (none) fetch_training_data → train_model → register_model → set_champion
                └─ (exists) fetch_current_data → detect_drift → drift_branch ─┬─ no_drift
                                                                             └─ train_challenger
    train_challenger → register_challenger → ab_test → decision_branch ─┬─ promote_challenger
                                                                       └─ keep_champion

The DAG is a thin shell: every task calls one function of ``dethrone.pipeline`` with the
settings (environment overridden by the run's params) and passes on its small dict.
Nothing is imported from dethrone, and nothing is read or fetched, at parse time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task


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
    "force_challenger": Param(False, type="boolean",
                              description="train and A/B test a challenger even without "
                                          "drift (an A/A check)"),
    "holdout_share": Param(0.2, type="number", minimum=0.0, maximum=0.5,
                           description="share of the current slice held out of the "
                                       "challenger's training for the paired test"),
}


def _ctx() -> tuple:
    from dethrone.pipeline import settings_from_params

    ctx = get_current_context()
    params = dict(ctx["params"])
    return settings_from_params(params), ctx["run_id"], params


@dag(
    dag_id="main_pipeline",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params=PARAMS,
    tags=["dethrone"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5),
                  "retry_exponential_backoff": True,
                  "execution_timeout": timedelta(minutes=20)},
    doc_md=__doc__,
)
def main_pipeline():
    @task.branch
    def check_champion() -> str:
        from dethrone import pipeline

        settings, _, _ = _ctx()
        found = pipeline.check_champion(settings)["champion_version"]
        return "fetch_current_data" if found else "fetch_training_data"

    # --- no champion yet: train the first one ----------------------------------------
    @task
    def fetch_training_data() -> dict:
        from dethrone import pipeline

        settings, run_id, params = _ctx()
        return pipeline.fetch_data(settings, dag_run_id=run_id, purpose="training",
                                   seed=params.get("seed"))

    @task
    def train_model(data: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, _ = _ctx()
        return pipeline.train_model(settings, data_uri=data["uri"], dag_run_id=run_id,
                                    role="champion")

    @task
    def register_model(trained: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, _ = _ctx()
        return pipeline.register_model(settings, run_id=trained["run_id"], dag_run_id=run_id,
                                       role="champion")

    @task
    def set_champion(registered: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, _ = _ctx()
        return pipeline.promote(settings, version=registered["version"], decision={
            "outcome": "first-champion", "dag_run_id": run_id,
            "reasons": ["no champion existed; the first trained model becomes champion"]})

    # --- champion exists: check drift, maybe challenge it ----------------------------
    @task
    def fetch_current_data() -> dict:
        from dethrone import pipeline

        settings, run_id, params = _ctx()
        out = pipeline.fetch_data(settings, dag_run_id=run_id, purpose="current",
                                  seed=params.get("seed"))
        # Pin the champion now so drift and A/B use the same version even if it moves.
        out["champion_version"] = pipeline.check_champion(settings)["champion_version"]
        return out

    @task
    def detect_drift(current: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, _ = _ctx()
        return pipeline.detect_drift(settings, data_uri=current["uri"], dag_run_id=run_id,
                                     champion_version=current["champion_version"])

    @task.branch
    def drift_branch(drift: dict) -> str:
        _, _, params = _ctx()
        if drift["drifted"] or params.get("force_challenger"):
            return "train_challenger"
        return "no_drift"

    @task
    def no_drift(drift: dict) -> dict:
        return {"outcome": "no-drift", "champion_version": drift["champion_version"]}

    @task
    def train_challenger(current: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, params = _ctx()
        return pipeline.train_model(settings, data_uri=current["uri"], dag_run_id=run_id,
                                    role="challenger",
                                    holdout_share=float(params.get("holdout_share") or 0.0))

    @task
    def register_challenger(trained: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, _ = _ctx()
        out = pipeline.register_model(settings, run_id=trained["run_id"], dag_run_id=run_id,
                                      role="challenger", alias="challenger")
        return {**out, "holdout_uri": trained["holdout_uri"]}

    @task
    def ab_test(current: dict, challenger: dict) -> dict:
        from dethrone import pipeline

        settings, run_id, params = _ctx()
        return pipeline.ab_test(settings, champion_version=current["champion_version"],
                                challenger_version=challenger["version"], dag_run_id=run_id,
                                holdout_uri=challenger["holdout_uri"], seed=params.get("seed"))

    @task.branch
    def decision_branch(decision: dict) -> str:
        return "promote_challenger" if decision["outcome"] == "promote" else "keep_champion"

    @task
    def promote_challenger(decision: dict) -> dict:
        from dethrone import pipeline

        settings, _, _ = _ctx()
        record = {k: v for k, v in decision.items()
                  if k in ("outcome", "comparison_run_id", "pvalue", "paired_pvalue", "ci",
                           "reasons", "dag_run_id")}
        return pipeline.promote(settings, version=decision["challenger_version"],
                                decision=record)

    @task
    def keep_champion(decision: dict) -> dict:
        # The decision is already logged and tagged on the challenger by ab_test.
        return {"outcome": decision["outcome"], "champion_version": decision["champion_version"],
                "reasons": decision["reasons"]}

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
    chosen >> [promote_challenger(decision), keep_champion(decision)]


main_pipeline()
