"""The steps of the champion/challenger pipeline, as plain functions.

The Airflow DAG (``airflow/dags/main_pipeline.py``) calls exactly these, one per task,
and so do the tests and the benchmark. Each step takes the settings plus a few small
arguments and returns a small JSON-serialisable dict (URIs, versions, verdicts): data
frames travel through :mod:`dethrone.staging`, never through XCom.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from dethrone.settings import Settings

#: DAG params that are not settings (the rest of the params must be setting names).
RUN_PARAMS = ("force_challenger", "seed", "holdout_share")


def settings_from_params(params: dict[str, Any] | None) -> Settings:
    """Settings from the environment, overridden by the non-empty DAG ``params``.

    Raises
    ------
    ValueError
        When a param is neither a setting nor one of :data:`RUN_PARAMS`.
    """
    overrides = {k: v for k, v in (params or {}).items()
                 if k not in RUN_PARAMS and v is not None and v != ""}
    return Settings.from_env().replace(**overrides)


def run_seed(dag_run_id: str, purpose: str, settings: Settings, seed: int | None = None) -> int:
    """A deterministic slice seed per (DAG run, purpose).

    Without ``seed``, different DAG runs draw different rows (so a no-drift run does not
    compare a slice with itself) while a retried task gets the same rows again. With an
    explicit ``seed`` (the DAG param) the slices depend only on it and the purpose, so a
    whole run can be repeated exactly.
    """
    key = f"{settings.random_state}:{dag_run_id}" if seed is None else f"seed:{int(seed)}"
    digest = hashlib.sha256(f"{key}:{purpose}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


def _key(dag_run_id: str, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dag_run_id)
    return f"runs/{safe}/{name}.parquet"


# --- steps -------------------------------------------------------------------------
def check_champion(settings: Settings) -> dict[str, Any]:
    """Which version is ``@champion`` (``{"champion_version": None}`` when none)."""
    from dethrone.registry import CHAMPION, Registry

    v = Registry(settings).version(CHAMPION)
    return {"champion_version": str(v.version) if v is not None else None}


def fetch_data(settings: Settings, *, dag_run_id: str, purpose: str,
               seed: int | None = None) -> dict[str, Any]:
    """Pull a slice from the router's /get_data and stage it; returns its URI.

    The router's config (including any drift) is read, never changed.
    """
    from dethrone.router_client import RouterClient
    from dethrone.staging import stage_frame

    client = RouterClient.from_settings(settings)
    slice_seed = run_seed(dag_run_id, purpose, settings, seed)
    frame = client.get_data(seed=slice_seed)
    if settings.target not in frame.columns:
        raise ValueError(f"router slice has no target column {settings.target!r} "
                         f"(columns: {list(frame.columns)})")
    uri = stage_frame(frame, _key(dag_run_id, purpose), settings)
    return {"uri": uri, "rows": len(frame), "seed": slice_seed,
            "traffic": client.get_traffic()}


def train_model(settings: Settings, *, data_uri: str, dag_run_id: str, role: str,
                holdout_share: float = 0.0) -> dict[str, Any]:
    """Train on the staged frame and log the run (model, data, reference profile).

    With ``holdout_share`` > 0 a random share of rows is held out of training and staged,
    so the champion and the challenger can later be compared on the same unseen rows.
    """
    from dethrone.drift import ReferenceProfile
    from dethrone.mlflow_logging import log_training_run
    from dethrone.registry import configure_mlflow
    from dethrone.staging import load_frame, stage_frame
    from dethrone.training import train

    configure_mlflow(settings)
    frame = load_frame(data_uri, settings)
    holdout_uri = None
    if holdout_share > 0:
        rng = np.random.default_rng(settings.random_state)
        mask = rng.random(len(frame)) < holdout_share
        holdout_uri = stage_frame(frame[mask], _key(dag_run_id, f"{role}_holdout"), settings)
        frame = frame[~mask]
    result = train(frame, settings)
    profile = ReferenceProfile.from_frame(frame, features=result.features,
                                          categorical=result.categorical, settings=settings)
    run_id = log_training_run(result, frame, profile, settings, dag_run_id=dag_run_id,
                              role=role, extra_tags={"dethrone.data_uri": data_uri})
    return {"run_id": run_id, "best": result.best, "task": result.task,
            "cv_mean": result.cv_mean(), "scoring": result.scoring, "rows": result.n_rows,
            "holdout_uri": holdout_uri}


def register_model(settings: Settings, *, run_id: str, dag_run_id: str, role: str,
                   alias: str | None = None) -> dict[str, Any]:
    """Register the run's model once per DAG run (idempotent) and optionally set ``alias``.

    ``alias`` may be ``challenger``; ``champion`` is only ever set by :func:`promote`.
    """
    from dethrone.registry import CHAMPION, Registry

    if alias == CHAMPION:
        raise ValueError("use promote() to change @champion")
    reg = Registry(settings)
    mv = reg.register(run_id, dag_run_id=dag_run_id, role=role)
    if alias:
        reg.set_alias(alias, mv.version)
    return {"version": str(mv.version), "run_id": run_id}


def promote(settings: Settings, *, version: str, decision: dict[str, Any]) -> dict[str, Any]:
    """Point ``@champion`` at ``version`` and record ``decision`` on it."""
    from dethrone.registry import Registry

    return Registry(settings).promote(version, decision)


def detect_drift(settings: Settings, *, data_uri: str, champion_version: str,
                 dag_run_id: str) -> dict[str, Any]:
    """Check the staged slice against the champion's stored reference profile.

    Logs the report (JSON + HTML) to MLflow when ``MLFLOW_LOG`` is on and returns the
    verdict with each feature's statistics.
    """
    from dethrone import drift
    from dethrone.mlflow_logging import log_drift
    from dethrone.registry import Registry
    from dethrone.staging import load_frame

    reg = Registry(settings)
    profile = reg.load_profile(champion_version)
    current = load_frame(data_uri, settings)
    info = reg.model_info(champion_version)
    report = drift.detect_drift(profile, current, features=info["features"],
                                categorical=info["categorical"], settings=settings)
    run_id = None
    if settings.mlflow_log:
        run_id = log_drift(report, drift.render_html(report), settings, dag_run_id=dag_run_id,
                           champion_version=champion_version)
    return {
        "drifted": bool(report.drifted), "drifted_features": report.drifted_features,
        "champion_version": str(champion_version), "run_id": run_id,
        "features": {n: {"drifted": bool(f.drifted), "method": f.method,
                         "statistic": _num(f.statistic), "pvalue": _num(f.pvalue),
                         "psi": _num(f.psi)} for n, f in report.features.items()},
    }


def _num(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _losses(model: Any, frame: pd.DataFrame, info: dict[str, Any]) -> dict[str, np.ndarray]:
    from dethrone import abtest
    from dethrone.training import prepare_features

    X = prepare_features(frame, info["features"], info["categorical"])
    y = frame[info["target"]]
    if info["task"] == "regression":
        pred = model.predict(X)
        return {"absolute_error": abtest.absolute_error(y.astype(float), pred),
                "squared_error": abtest.squared_error(y.astype(float), pred)}
    proba = model.predict_proba(X)
    return {"log_loss": abtest.log_loss(y, proba, labels=list(model.classes_)),
            "zero_one_loss": abtest.zero_one_loss(y, model.predict(X))}


def ab_test(settings: Settings, *, champion_version: str, challenger_version: str,
            dag_run_id: str, holdout_uri: str | None = None,
            seed: int | None = None) -> dict[str, Any]:
    """A/B test: the champion scores slice A, the challenger slice B (from /ab_data).

    When ``holdout_uri`` is given both models also score those held-out rows, and the
    decision needs the paired test to agree. The comparison is logged to
    ``COMPARISON_NAME`` and the decision is tagged onto the challenger's version.
    """
    from dethrone import abtest
    from dethrone.mlflow_logging import log_comparison
    from dethrone.registry import Registry
    from dethrone.router_client import RouterClient
    from dethrone.staging import load_frame

    reg = Registry(settings)
    client = RouterClient.from_settings(settings)
    share_a = float(client.get_traffic()["a"])
    a_frame, b_frame = client.ab_data(seed=run_seed(dag_run_id, "ab", settings, seed))
    info = reg.model_info(challenger_version)
    champ, chall = reg.load_model(champion_version), reg.load_model(challenger_version)
    loss_a, loss_b = _losses(champ, a_frame, info), _losses(chall, b_frame, info)
    primary, guard = list(loss_a)
    paired = None
    if holdout_uri:
        holdout = load_frame(holdout_uri, settings)
        paired = (_losses(champ, holdout, info)[primary], _losses(chall, holdout, info)[primary])
    decision = abtest.decide(
        loss_a[primary], loss_b[primary], expected_share_a=share_a,
        guardrails={guard: (loss_a[guard], loss_b[guard])}, paired=paired,
        random_state=settings.random_state, settings=settings)
    unp = decision.unpaired
    comparison_run = None
    if settings.mlflow_log:
        extra = {f"a_mean_{guard}": float(np.mean(loss_a[guard])),
                 f"b_mean_{guard}": float(np.mean(loss_b[guard]))}
        comparison_run = log_comparison(
            decision, loss_a[primary], loss_b[primary], settings, dag_run_id=dag_run_id,
            champion_version=champion_version, challenger_version=challenger_version,
            loss_name=primary, extra_metrics=extra)
    record = {"outcome": decision.outcome, "comparison_run_id": comparison_run,
              "pvalue": None if unp is None else _num(unp.pvalue),
              "paired_pvalue": None if decision.paired is None else _num(decision.paired.pvalue),
              "ci": None if unp is None else [_num(unp.ci_low), _num(unp.ci_high)],
              "reasons": list(decision.reasons), "dag_run_id": dag_run_id,
              "champion_version": str(champion_version)}
    reg.record_decision(challenger_version, record)
    return {**record, "challenger_version": str(challenger_version), "loss": primary,
            "a_rows": len(a_frame), "b_rows": len(b_frame),
            "a_mean_loss": float(np.mean(loss_a[primary])),
            "b_mean_loss": float(np.mean(loss_b[primary]))}
