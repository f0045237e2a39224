"""Everything dethrone writes to MLflow runs: training, drift reports and comparisons.

Tag names and artifact paths come from :mod:`dethrone.registry.records`; MLflow itself must have
been configured once by :func:`dethrone.pipeline.context.configure_mlflow`.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from dethrone.pipeline.training import TrainResult, prepare_features
from dethrone.registry.records import (
    COMPARISON_DIR,
    DECISION_JSON,
    DRIFT_REPORT_HTML,
    DRIFT_REPORT_JSON,
    MODEL_NAME_IN_RUN,
    OUTPUTS_PROFILE_PATH,
    PROFILE_PATH,
    ROLE_AB_TEST,
    ROLE_DRIFT_CHECK,
    TRAINING_DATA_PATH,
    Decision,
    DriftVerdict,
    ModelInfo,
    RunIdentity,
    TrainingRecord,
)
from dethrone.settings import Settings


def _flat_metrics(prefix: str, values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
        elif isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value):
            out[f"{prefix}{key}"] = float(value)
    return out


def log_training_run(
    result: TrainResult,
    frame: pd.DataFrame,
    profile: Any,
    settings: Settings,
    *,
    dag_run_id: str,
    role: str,
    data_uri: str | None = None,
    outputs_profile: Any = None,
) -> str:
    """Log a training run to ``EXPERIMENT_NAME``: params, CV metrics, model and its data.

    The model is logged with a signature and an input example; the training rows and
    their drift ``ReferenceProfile`` are stored with the run.

    Returns
    -------
    str
        The MLflow run id.
    """
    mlflow.set_experiment(settings.experiment_name)
    info = ModelInfo(
        features=result.features,
        categorical=result.categorical,
        numeric=result.numeric,
        target=result.target,
        task=result.task,
    )
    X = prepare_features(frame, result.features, result.categorical)
    example = X.head(5)
    signature = infer_signature(example, result.model.predict(example))
    with mlflow.start_run(run_name=f"{role}-{dag_run_id}") as run:
        mlflow.set_tags(
            {
                **RunIdentity(role=role, dag_run_id=dag_run_id).to_tags(),
                **info.to_tags(),
                **TrainingRecord(data_uri=data_uri).to_tags(),
            }
        )
        _log_cv(result, settings)
        logged = mlflow.sklearn.log_model(
            result.model,
            name=MODEL_NAME_IN_RUN,
            signature=signature,
            input_example=example,
            # Pinned requirements skip MLflow's slow dependency inference subprocess.
            pip_requirements=[
                f"scikit-learn=={_version('sklearn')}",
                f"pandas=={_version('pandas')}",
            ],
            serialization_format="cloudpickle",
        )
        mlflow.set_tags(TrainingRecord(model_id=logged.model_id).to_tags())
        _log_data(frame, profile, outputs_profile)
        return run.info.run_id


def _log_cv(result: TrainResult, settings: Settings) -> None:
    """The training's params (the chosen candidate's too) and its cross-validation scores."""
    mlflow.log_params(
        {
            "candidate": result.best,
            "task": result.task,
            "target": result.target,
            "cv_folds": settings.cv_folds,
            "random_state": result.random_state,
            "n_rows": result.n_rows,
            "scoring": result.scoring,
        }
    )
    mlflow.log_params({k: v for k, v in list(result.params.items())[:80]})
    for name, scores in result.cv_scores.items():
        mlflow.log_metric(f"cv_{name}_mean", float(np.mean(scores)))
        mlflow.log_metric(f"cv_{name}_std", float(np.std(scores)))
    mlflow.log_metric("cv_best_mean", result.cv_mean())


def _log_data(frame: pd.DataFrame, profile: Any, outputs_profile: Any) -> None:
    """The training rows, their drift profile and the outputs' profile, as run artifacts."""
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / Path(TRAINING_DATA_PATH).name
        frame.to_parquet(data_path)
        mlflow.log_artifact(str(data_path), str(Path(TRAINING_DATA_PATH).parent))
        prof_path = Path(tmp) / Path(PROFILE_PATH).name
        profile.save(prof_path)
        mlflow.log_artifact(str(prof_path), str(Path(PROFILE_PATH).parent))
        if outputs_profile is not None:
            out_path = Path(tmp) / Path(OUTPUTS_PROFILE_PATH).name
            outputs_profile.save(out_path)
            mlflow.log_artifact(str(out_path), str(Path(OUTPUTS_PROFILE_PATH).parent))


def _version(module: str) -> str:
    return importlib.import_module(module).__version__


def log_drift(
    report: Any, html: str | None, settings: Settings, *, dag_run_id: str, champion_version: str
) -> str:
    """Log a drift report (JSON + HTML) as a run in ``EXPERIMENT_NAME``; return its id."""
    mlflow.set_experiment(settings.experiment_name)
    data = report.to_dict()
    with mlflow.start_run(run_name=f"drift-{dag_run_id}") as run:
        verdict = DriftVerdict(
            champion_version=str(champion_version),
            drifted=bool(report.drifted),
            drifted_features=list(report.drifted_features),
        )
        mlflow.set_tags(
            {
                **RunIdentity(role=ROLE_DRIFT_CHECK, dag_run_id=dag_run_id).to_tags(),
                **verdict.to_tags(),
            }
        )
        mlflow.log_metric("drift_detected", float(bool(report.drifted)))
        mlflow.log_metric("n_drifted_features", float(len(report.drifted_features)))
        for name, fd in report.features.items():
            for key in ("statistic", "pvalue", "psi"):
                value = getattr(fd, key, None)
                if value is not None and np.isfinite(value):
                    mlflow.log_metric(f"{key}_{name}", float(value))
        mlflow.log_dict(data, DRIFT_REPORT_JSON)
        if html:
            mlflow.log_text(html, DRIFT_REPORT_HTML)
        return run.info.run_id


def _error_plot(loss_a: np.ndarray, loss_b: np.ndarray, path: Path, label: str) -> bool:
    try:
        # lazy and optional: matplotlib may be absent (no plot then), pyplot after use("Agg")
        import matplotlib

        matplotlib.use("Agg")  # no display on servers
        import matplotlib.pyplot as plt  # only after use("Agg")
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    hi = float(np.quantile(np.concatenate([loss_a, loss_b]), 0.99)) or 1.0
    bins = np.linspace(0, hi, 50)
    axes[0].hist(loss_a, bins=bins, alpha=0.6, label=f"A champion (n={len(loss_a)})")
    axes[0].hist(loss_b, bins=bins, alpha=0.6, label=f"B challenger (n={len(loss_b)})")
    axes[0].set_xlabel(label)
    axes[0].set_ylabel("rows")
    axes[0].legend()
    axes[1].boxplot([loss_a, loss_b], showfliers=False)
    axes[1].set_xticks([1, 2], ["A champion", "B challenger"])
    axes[1].set_ylabel(label)
    axes[1].set_title("per-row loss (no outliers shown)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def log_comparison(
    decision: Any,
    loss_a: np.ndarray,
    loss_b: np.ndarray,
    settings: Settings,
    *,
    record: Decision,
    extra_metrics: dict[str, float] | None = None,
) -> str:
    """Log an A/B comparison run in ``COMPARISON_NAME``; return its id.

    Logs both arms' metrics, every statistic of the decision, the SRM check, the outcome
    with its reasons (as tags and JSON) and a plot of the two arms' per-row losses.
    """
    mlflow.set_experiment(settings.comparison_name)
    data = decision.to_dict()
    loss_name = record.loss or "loss"
    with mlflow.start_run(run_name=f"ab-{record.dag_run_id}") as run:
        mlflow.set_tags(
            {
                **RunIdentity(role=ROLE_AB_TEST, dag_run_id=record.dag_run_id).to_tags(),
                **record.to_tags(),
            }
        )
        mlflow.log_params(
            {
                "loss": loss_name,
                "alpha": settings.ab_alpha,
                "margin": settings.ab_margin,
                "min_rows_per_arm": settings.ab_min_rows_per_arm,
            }
        )
        metrics = {
            "a_mean_loss": float(np.mean(loss_a)),
            "b_mean_loss": float(np.mean(loss_b)),
            "a_rows": float(len(loss_a)),
            "b_rows": float(len(loss_b)),
        }
        metrics.update(extra_metrics or {})
        metrics.update(_flat_metrics("", _flatten(data)))
        mlflow.log_metrics(metrics)
        mlflow.log_dict(data, DECISION_JSON)
        with tempfile.TemporaryDirectory() as tmp:
            plot = Path(tmp) / "errors.png"
            if _error_plot(np.asarray(loss_a), np.asarray(loss_b), plot, loss_name):
                mlflow.log_artifact(str(plot), COMPARISON_DIR)
        return run.info.run_id


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif not isinstance(value, (list, str)) and value is not None:
            out[name.replace(" ", "_")] = value
    return out
