"""The steps of the champion/challenger pipeline, as plain functions.

Each step takes a :class:`~dethrone.pipeline.context.PipelineContext` (settings, registry, router
client, stager, tracker: built once by the caller, faked by the unit tests) plus a few
small arguments, and returns a small JSON-serialisable dict (URIs, versions, verdicts):
data frames travel through the stager, never through XCom. The Airflow DAG
(``airflow/dags/main_pipeline.py``) calls exactly these, one per task.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import pandas as pd

from dethrone import abtest, drift
from dethrone.drift import ReferenceProfile
from dethrone.drift.spark import profile_spark, read_columns
from dethrone.experiments import tracking
from dethrone.experiments.lifecycle import ExperimentContext, start_experiment
from dethrone.pipeline.context import PipelineContext
from dethrone.pipeline.sources import (
    LOSS,
    PREDICTION,
    TooFewRows,
    log_frame,
    read_table,
    source_kind,
)
from dethrone.pipeline.training import prepare_features, reference_outputs, train
from dethrone.registry.records import CHAMPION, Decision, ModelInfo
from dethrone.settings import Settings
from dethrone.store.engine import database_url, make_engine

#: DAG params that are not settings (the rest of the params must be setting names).
RUN_PARAMS = ("force_challenger", "seed", "holdout_share", "live", "live_mode", "live_split")
#: the loss that decides and the guardrail that must not get worse, per task.
LOSSES = {
    "regression": ("absolute_error", "squared_error"),
    "classification": ("log_loss", "zero_one_loss"),
}
#: decision fields a promotion copies onto the new champion (the rest is per-run detail).
PROMOTION_FIELDS = (
    "outcome",
    "comparison_run_id",
    "pvalue",
    "paired_pvalue",
    "ci",
    "reasons",
    "dag_run_id",
    "champion_version",
    "challenger_version",
    "expected_share_a",
    "config_version",
    "loss",
)


def settings_from_params(params: dict[str, Any] | None) -> Settings:
    """Settings from the environment, overridden by the non-empty DAG ``params``.

    Raises
    ------
    ValueError
        When a param is neither a setting nor one of :data:`RUN_PARAMS`.
    """
    overrides = {
        k: v for k, v in (params or {}).items() if k not in RUN_PARAMS and v is not None and v != ""
    }
    return Settings.from_env().replace(**overrides)


def is_permanent(exc: BaseException) -> bool:
    """Whether retrying the step that raised ``exc`` cannot help.

    Bad params, schema mismatches and validation errors (``ValueError``, ``TypeError``,
    ``KeyError``) and errors flagged ``permanent`` (a 4xx from the router, a version
    without model info) fail at once; network and server errors are retried.
    """
    flagged = getattr(exc, "permanent", None)
    if flagged is not None:
        return bool(flagged)
    if isinstance(exc, OSError):  # requests' exceptions are OSErrors, even JSON ones
        return False
    return isinstance(exc, (ValueError, TypeError, KeyError))


def run_seed(dag_run_id: str, purpose: str, settings: Settings, seed: int | None = None) -> int:
    """A deterministic slice seed per (DAG run, purpose).

    Without ``seed``, different DAG runs draw different rows (so a no-drift run does not
    compare a slice with itself) while a retried task gets the same rows again. With an
    explicit ``seed`` (the DAG param) the slices depend only on it and the purpose.

    >>> run_seed("r1", "ab", Settings()) == run_seed("r1", "ab", Settings())
    True
    """
    key = f"{settings.random_state}:{dag_run_id}" if seed is None else f"seed:{int(seed)}"
    digest = hashlib.sha256(f"{key}:{purpose}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


def _key(dag_run_id: str, name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", dag_run_id)
    return f"runs/{safe}/{name}.parquet"


# --- steps -------------------------------------------------------------------------
def check_champion(ctx: PipelineContext) -> dict[str, Any]:
    """Which version is ``@champion`` (``{"champion_version": None}`` when none)."""
    v = ctx.registry.alias_version(CHAMPION)
    return {"champion_version": str(v.version) if v is not None else None}


def fetch_data(
    ctx: PipelineContext,
    *,
    dag_run_id: str,
    purpose: str,
    seed: int | None = None,
    pin_champion: bool = False,
) -> dict[str, Any]:
    """Fetch a frame and stage it; returns its URI.

    Training data always comes from the router's ``/get_data``; the current data of a
    drift check (``purpose="current"``) from ``DRIFT_SOURCE``: the router, the champion's
    served rows in the prediction log, or a file (see :mod:`dethrone.pipeline.sources`).
    With ``pin_champion`` the current ``@champion`` is recorded too, so drift and the
    A/B test later use the same version even if the alias moves meanwhile.
    """
    settings = ctx.settings
    kind = source_kind(settings.drift_source) if purpose == "current" else "router"
    slice_seed = run_seed(dag_run_id, purpose, settings, seed)
    champion = check_champion(ctx) if pin_champion or kind == "log" else {}
    if kind == "log":
        frame = _served_frame(ctx, champion.get("champion_version"))
    elif kind == "file":
        frame = read_table(settings.drift_source, ctx.stager)
    else:
        frame = ctx.router.get_data(seed=slice_seed)
    target = settings.target
    if target not in frame.columns:
        raise ValueError(
            f"{kind} data has no target column {target!r} (columns: {list(frame.columns)})"
        )
    out = {
        "uri": ctx.stager.put(frame, _key(dag_run_id, purpose)),
        "rows": len(frame),
        "seed": slice_seed,
        "source": settings.drift_source if purpose == "current" else "router",
    }
    if kind == "log":
        out["window"] = settings.drift_window
    return {**out, **champion}


def _served_frame(ctx: PipelineContext, champion_version: str | None) -> pd.DataFrame:
    if champion_version is None:
        raise ValueError("DRIFT_SOURCE=log needs a @champion whose served rows to read")
    engine = make_engine(database_url(ctx.settings))
    try:
        frame = log_frame(
            engine,
            model_version=champion_version,
            window=ctx.settings.drift_window,
            target=ctx.settings.target,
        )
    finally:
        engine.dispose()
    if len(frame) < ctx.settings.drift_min_rows:
        raise TooFewRows(
            f"DRIFT_SOURCE=log: v{champion_version} served {len(frame)} rows with logged "
            f"features in the last {ctx.settings.drift_window}, need {ctx.settings.drift_min_rows}"
            " (DRIFT_MIN_ROWS)"
        )
    return frame


def train_model(
    ctx: PipelineContext, *, data_uri: str, dag_run_id: str, role: str, holdout_share: float = 0.0
) -> dict[str, Any]:
    """Train on the staged frame and log the run (model, data, reference profile).

    With ``holdout_share`` > 0 a random share of rows is held out of training and staged,
    so the champion and the challenger can later be compared on the same unseen rows.
    """

    settings = ctx.settings
    frame = ctx.stager.get(data_uri)
    holdout_uri = None
    if holdout_share > 0:
        mask = np.random.default_rng(settings.random_state).random(len(frame)) < holdout_share
        holdout_uri = ctx.stager.put(frame[mask], _key(dag_run_id, f"{role}_holdout"))
        frame = frame[~mask]
    result = train(frame, settings)
    profile = ReferenceProfile.from_frame(
        frame, features=result.features, categorical=result.categorical, settings=settings
    )
    outputs = reference_outputs(result, frame, random_state=settings.random_state)
    outputs_profile = ReferenceProfile.from_frame(
        outputs,
        categorical=[PREDICTION] if result.task == "classification" else [],
        settings=settings,
    )
    run_id = ctx.tracker.log_training_run(
        result,
        frame,
        profile,
        settings,
        dag_run_id=dag_run_id,
        role=role,
        data_uri=data_uri,
        outputs_profile=outputs_profile,
    )
    return {
        "run_id": run_id,
        "best": result.best,
        "task": result.task,
        "cv_mean": result.cv_mean(),
        "scoring": result.scoring,
        "rows": result.n_rows,
        "holdout_uri": holdout_uri,
    }


def register_model(
    ctx: PipelineContext, *, run_id: str, dag_run_id: str, role: str, alias: str | None = None
) -> dict[str, Any]:
    """Register the run's model once per DAG run (idempotent) and optionally set ``alias``.

    ``alias`` may be ``challenger``; ``champion`` is only ever set by a promotion.
    """
    if alias == CHAMPION:
        raise ValueError("use promote_challenger() or first_champion() to change @champion")
    mv = ctx.registry.register(run_id, dag_run_id=dag_run_id, role=role)
    if alias:
        ctx.registry.set_alias(alias, mv.version)
    return {"version": str(mv.version), "run_id": run_id}


def first_champion(ctx: PipelineContext, *, version: str, dag_run_id: str) -> dict[str, Any]:
    """Make the first trained model the champion (there was none to compare it with)."""
    decision = Decision(
        outcome="first-champion",
        dag_run_id=dag_run_id,
        reasons=["no champion existed; the first trained model becomes champion"],
    )
    return ctx.registry.promote(version, decision)


def promote_challenger(ctx: PipelineContext, *, decision: dict[str, Any]) -> dict[str, Any]:
    """Point ``@champion`` at the A/B test's challenger and record the decision on it.

    Raises
    ------
    ValueError
        When ``decision`` is not a "promote" outcome of :func:`ab_test`.
    """
    if decision.get("outcome") != "promote":
        raise ValueError(f"refusing to promote on outcome {decision.get('outcome')!r}")
    record = Decision(**{k: decision[k] for k in PROMOTION_FIELDS if k in decision})
    return ctx.registry.promote(decision["challenger_version"], record)


def start_live(
    ctx: PipelineContext,
    *,
    challenger_version: str,
    dag_run_id: str,
    mode: str = "ab",
    split: float = 0.5,
) -> dict[str, Any]:
    """Start a live experiment of the pre-screened challenger (instead of promoting it).

    Idempotent per ``dag_run_id``; see :func:`dethrone.experiments.lifecycle.start_experiment`.
    """
    engine = make_engine(database_url(ctx.settings))
    live = ExperimentContext(
        settings=ctx.settings,
        registry=ctx.registry,
        router=ctx.router,
        engine=engine,
        tracker=tracking.Tracker(ctx.settings),
    )
    try:
        return start_experiment(
            live,
            challenger_version=challenger_version,
            key=dag_run_id,
            mode=mode,
            split=split,
            reason="offline pre-screen: promote",
        )
    finally:
        engine.dispose()


def check_drift(
    ctx: PipelineContext, *, data_uri: str, champion_version: str, dag_run_id: str
) -> dict[str, Any]:
    """Check the staged slice against the champion's stored reference profile.

    Logs the report (JSON + HTML) when ``MLFLOW_LOG`` is on and returns the verdict
    with each feature's statistics.
    """
    profile = ctx.registry.load_profile(champion_version)
    info = ctx.registry.model_info(champion_version)
    current: pd.DataFrame | drift.ReferenceProfile  # detect_drift takes either
    if ctx.settings.drift_engine == "spark":  # the current side profiled by Spark
        current = profile_spark(
            data_uri, features=info.features, categorical=info.categorical, settings=ctx.settings
        )
        # the output checks need only the model's outputs and losses (log source)
        outputs_frame = read_columns(data_uri, [PREDICTION, LOSS], ctx.settings)
    else:
        current = outputs_frame = ctx.stager.get(data_uri)
    report = drift.detect_drift(
        profile,
        current,
        features=info.features,
        categorical=info.categorical,
        settings=ctx.settings,
    )
    outputs = _output_checks(ctx, champion_version, outputs_frame, info)
    run_id = None
    if ctx.settings.mlflow_log:
        run_id = ctx.tracker.log_drift(
            report,
            drift.render_html(report),
            ctx.settings,
            dag_run_id=dag_run_id,
            champion_version=champion_version,
        )
    return {
        "drifted": bool(report.drifted) or any(o["drifted"] for o in outputs.values()),
        "drifted_features": report.drifted_features,
        "champion_version": str(champion_version),
        "source": ctx.settings.drift_source,
        "engine": ctx.settings.drift_engine,
        "run_id": run_id,
        "features": {n: _feature(f) for n, f in report.features.items()},
        **outputs,
    }


def _feature(f: Any) -> dict[str, Any]:
    return {
        "drifted": bool(f.drifted),
        "method": f.method,
        "statistic": _num(f.statistic),
        "pvalue": _num(f.pvalue),
        "psi": _num(f.psi),
    }


def _output_checks(
    ctx: PipelineContext, version: str, current: pd.DataFrame, info: ModelInfo
) -> dict[str, Any]:
    """Prediction drift and live performance, when the current rows come from the log.

    ``prediction``: the champion's served outputs against its outputs on its training
    rows; ``performance``: the loss of its labelled served rows against its out-of-fold
    loss on them. Each is the drift test of its column kind at the drift thresholds, so
    a shift in what the model answers, or in how wrong it is, counts like a feature's.
    """
    if PREDICTION not in current.columns:
        return {}
    reference = ctx.registry.load_outputs_profile(version)
    if reference is None:
        return {}
    out: dict[str, Any] = {}
    kinds = [PREDICTION] if info.task == "classification" else []
    checks = {"prediction": (PREDICTION, current)}
    labelled = current[current[LOSS].notna()] if LOSS in current.columns else current.iloc[:0]
    if len(labelled) >= ctx.settings.drift_min_rows:
        checks["performance"] = (LOSS, labelled)
    for name, (column, rows) in checks.items():
        if column not in reference.features:
            continue
        report = drift.detect_drift(
            reference,
            rows[[column]],
            features=[column],
            categorical=[c for c in kinds if c == column],
            settings=ctx.settings,
        )
        out[name] = {
            **_feature(report.features[column]),
            "rows": len(rows),
            "mean": _num(float(rows[column].mean())) if column == LOSS else None,
        }
    return out


def _num(value: Any) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def losses(model: Any, frame: pd.DataFrame, info: ModelInfo) -> dict[str, np.ndarray]:
    """Per-row losses of ``model`` on ``frame``, scored with the model's own ``info``."""
    X = prepare_features(frame, info.features, info.categorical)
    y = frame[info.target]
    if info.task == "regression":
        pred = model.predict(X)
        return {
            "absolute_error": abtest.absolute_error(y.astype(float), pred),
            "squared_error": abtest.squared_error(y.astype(float), pred),
        }
    proba = model.predict_proba(X)
    return {
        "log_loss": abtest.log_loss(y, proba, labels=list(model.classes_)),
        "zero_one_loss": abtest.zero_one_loss(y, model.predict(X)),
    }


def ab_test(
    ctx: PipelineContext,
    *,
    champion_version: str,
    challenger_version: str,
    dag_run_id: str,
    holdout_uri: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A/B test: the champion scores slice A, the challenger slice B (from /ab_data).

    The expected split and the config version come from the same /ab_data response as
    the rows, so the SRM gate tests the split the rows were cut by. Each model is scored
    with its own feature list. With ``holdout_uri`` both models also score those
    held-out rows and the decision needs the paired test to agree. The comparison is
    logged and the decision is tagged onto the challenger's version.
    """
    reg, settings = ctx.registry, ctx.settings
    ab = ctx.router.ab_slices(seed=run_seed(dag_run_id, "ab", settings, seed))
    for arm, frame in (("A", ab.a), ("B", ab.b)):
        if frame.empty:
            raise ValueError(
                f"/ab_data gave arm {arm} no rows (the router's split gives the champion "
                f"{ab.share_a:.0%}): set a and b strictly between 0 and 1 with POST /traffic"
            )
    info_a, info_b = reg.model_info(champion_version), reg.model_info(challenger_version)
    if info_a.task != info_b.task:
        raise ValueError(f"champion is a {info_a.task} model, challenger a {info_b.task} one")
    primary, guard = LOSSES[info_b.task]
    champ, chall = reg.load_model(champion_version), reg.load_model(challenger_version)
    loss_a, loss_b = losses(champ, ab.a, info_a), losses(chall, ab.b, info_b)
    paired = None
    if holdout_uri:
        holdout = ctx.stager.get(holdout_uri)
        paired = (losses(champ, holdout, info_a)[primary], losses(chall, holdout, info_b)[primary])
    decision = abtest.decide(
        loss_a[primary],
        loss_b[primary],
        expected_share_a=ab.share_a,
        guardrails={guard: (loss_a[guard], loss_b[guard])},
        paired=paired,
        random_state=settings.random_state,
        settings=settings,
    )
    unp = decision.unpaired
    record = Decision(
        outcome=decision.outcome,
        dag_run_id=dag_run_id,
        reasons=list(decision.reasons),
        champion_version=str(champion_version),
        challenger_version=str(challenger_version),
        pvalue=None if unp is None else _num(unp.pvalue),
        paired_pvalue=None if decision.paired is None else _num(decision.paired.pvalue),
        ci=None if unp is None else [_num(unp.ci_low), _num(unp.ci_high)],
        loss=primary,
        expected_share_a=ab.share_a,
        config_version=ab.config_version,
    )
    if settings.mlflow_log:
        extra = {
            f"a_mean_{guard}": float(np.mean(loss_a[guard])),
            f"b_mean_{guard}": float(np.mean(loss_b[guard])),
        }
        run_id = ctx.tracker.log_comparison(
            decision, loss_a[primary], loss_b[primary], settings, record=record, extra_metrics=extra
        )
        record = Decision(**{**record.to_dict(), "comparison_run_id": run_id})
    reg.record_decision(challenger_version, record)
    return {
        **record.to_dict(),
        "a_rows": len(ab.a),
        "b_rows": len(ab.b),
        "a_mean_loss": float(np.mean(loss_a[primary])),
        "b_mean_loss": float(np.mean(loss_b[primary])),
    }
