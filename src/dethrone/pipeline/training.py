"""Model training: a preprocessing pipeline, a few candidates, k-fold CV, refit of the best.

The same code trains the first champion and every challenger, so the two are only ever
different because of the data they saw, never because of the recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_val_score
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from dethrone.pipeline.features import build_preprocessor, prepare_features, split_columns
from dethrone.pipeline.sources import LOSS, PREDICTION
from dethrone.pipeline.trainer import load_trainer, train_with
from dethrone.settings import Settings

__all__ = [
    "TrainResult",
    "build_preprocessor",
    "candidates",
    "infer_task",
    "prepare_features",
    "split_columns",
    "train",
]

#: primary CV metric per task, as a scikit-learn scorer name (higher is better).
PRIMARY_SCORING = {"regression": "neg_mean_absolute_error", "classification": "neg_log_loss"}

# A target with at most this many distinct integer values is treated as class labels.
_MAX_CLASSES = 20


@dataclass(frozen=True)
class TrainResult:
    """A fitted model and the evidence that chose it.

    Attributes
    ----------
    model : sklearn.pipeline.Pipeline
        The best candidate refitted on all training rows.
    task : str
        ``"regression"`` or ``"classification"``.
    best : str
        Name of the chosen candidate.
    scoring : str
        The scikit-learn scorer used for CV (higher is better).
    cv_scores : dict
        Candidate name -> list of per-fold scores.
    features, numeric, categorical : list of str
        Input columns, split by kind.
    target : str
        Target column.
    n_rows : int
        Training rows.
    random_state : int
        Seed used for folds and models.
    """

    model: Pipeline
    task: str
    best: str
    scoring: str
    cv_scores: dict[str, list[float]]
    features: list[str]
    numeric: list[str]
    categorical: list[str]
    target: str
    n_rows: int
    random_state: int
    params: dict[str, Any] = field(default_factory=dict)

    def cv_mean(self, name: str | None = None) -> float:
        """Mean CV score of candidate ``name`` (the best one by default)."""
        return float(np.mean(self.cv_scores[name or self.best]))

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable summary (no model object)."""
        return {
            "task": self.task,
            "best": self.best,
            "scoring": self.scoring,
            "cv_mean": {k: float(np.mean(v)) for k, v in self.cv_scores.items()},
            "cv_std": {k: float(np.std(v)) for k, v in self.cv_scores.items()},
            "features": list(self.features),
            "categorical": list(self.categorical),
            "target": self.target,
            "n_rows": self.n_rows,
            "random_state": self.random_state,
        }


def infer_task(y: pd.Series, task: str = "auto") -> str:
    """Decide whether ``y`` is a regression or a classification target.

    Parameters
    ----------
    y : pandas.Series
        The target values.
    task : {"auto", "regression", "classification"}
        An explicit choice wins; ``"auto"`` infers: non-numeric, boolean or categorical
        targets, and integer targets with at most 20 distinct values, are classification.

    Returns
    -------
    str
        ``"regression"`` or ``"classification"``.
    """
    if task in ("regression", "classification"):
        return task
    if task != "auto":
        raise ValueError(f"task must be auto, regression or classification, got {task!r}")
    if (
        isinstance(y.dtype, pd.CategoricalDtype)
        or pd.api.types.is_bool_dtype(y)
        or not pd.api.types.is_numeric_dtype(y)
    ):
        return "classification"
    values = y.dropna()
    if pd.api.types.is_integer_dtype(values) or bool(np.all(np.mod(values, 1) == 0)):
        if values.nunique() <= _MAX_CLASSES:
            return "classification"
    return "regression"


def candidates(task: str, random_state: int) -> dict[str, BaseEstimator]:
    """The candidate estimators for ``task``, each seeded with ``random_state``.

    Forests are kept small and single-threaded: the machines this runs on are shared
    and a pipeline run must stay well under a minute.
    """
    if task == "regression":
        return {
            "ridge": Ridge(alpha=1.0),
            "random_forest": RandomForestRegressor(
                n_estimators=60,
                min_samples_leaf=2,
                max_features=0.5,
                random_state=random_state,
                n_jobs=1,
            ),
            "hist_gradient_boosting": HistGradientBoostingRegressor(
                max_iter=200, learning_rate=0.1, random_state=random_state
            ),
        }
    return {
        "logistic_regression": LogisticRegression(max_iter=2000),
        "random_forest": RandomForestClassifier(
            n_estimators=100, min_samples_leaf=2, random_state=random_state, n_jobs=1
        ),
        "hist_gradient_boosting": HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.1, random_state=random_state
        ),
    }


def train(
    frame: pd.DataFrame,
    settings: Settings | None = None,
    *,
    target: str | None = None,
    task: str | None = None,
    only: list[str] | None = None,
) -> TrainResult:
    """Cross-validate the candidates on ``frame`` and refit the best on all rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        Training rows including the target column.
    settings : Settings, optional
        Supplies ``target``, ``task``, ``cv_folds`` and ``random_state``; default
        ``Settings()`` (library functions never read the environment).
    target, task : str, optional
        Override the settings' values.
    only : list of str, optional
        Restrict the candidates to these names.

    Returns
    -------
    TrainResult
    """
    settings = settings or Settings()
    target = target or settings.target
    numeric, categorical = split_columns(frame, target)
    rows = _labelled_rows(frame, target, settings.cv_folds)
    task = infer_task(rows[target], task or settings.task)
    features = numeric + categorical
    X = prepare_features(rows, features, categorical)
    y, folds = _target_and_folds(rows[target], task, settings)
    scoring = PRIMARY_SCORING[task]
    if settings.trainer and not only:
        fitted, trainer_scores = train_with(
            load_trainer(settings.trainer),
            X.assign(**{target: y}),
            X,
            y,
            folds=folds,
            scoring=scoring,
            settings=settings,
        )
        return TrainResult(
            model=fitted,
            task=task,
            best=f"trainer:{settings.trainer}",
            scoring=scoring,
            cv_scores={f"trainer:{settings.trainer}": trainer_scores},
            features=features,
            numeric=numeric,
            categorical=categorical,
            target=target,
            n_rows=len(rows),
            random_state=settings.random_state,
        )
    pool = _candidate_pool(task, settings.random_state, only)
    model, best, scores = _select_and_refit(pool, numeric, categorical, X, y, folds, scoring)
    return TrainResult(
        model=model,
        task=task,
        best=best,
        scoring=scoring,
        cv_scores=scores,
        features=features,
        numeric=numeric,
        categorical=categorical,
        target=target,
        n_rows=len(rows),
        random_state=settings.random_state,
        params={
            f"{best}.{k}": v
            for k, v in pool[best].get_params().items()
            if isinstance(v, (int, float, str, bool)) or v is None
        },
    )


def _labelled_rows(frame: pd.DataFrame, target: str, cv_folds: int) -> pd.DataFrame:
    """The rows with a target; enough of them for the folds (else ValueError)."""
    rows = frame[frame[target].notna()]
    if len(rows) < max(cv_folds * 2, 10):
        raise ValueError(f"need at least {max(cv_folds * 2, 10)} labelled rows, got {len(rows)}")
    return rows


def _target_and_folds(y: pd.Series, task: str, settings: Settings) -> tuple[pd.Series, Any]:
    """The target as the task scores it, and the (stratified for classes) shuffled folds."""
    if task == "classification":
        y = y.astype(str) if not pd.api.types.is_numeric_dtype(y) else y
        folds = StratifiedKFold(settings.cv_folds, shuffle=True, random_state=settings.random_state)
    else:
        y = y.astype(float)
        folds = KFold(settings.cv_folds, shuffle=True, random_state=settings.random_state)
    return y, folds


def _candidate_pool(task: str, random_state: int, only: list[str] | None) -> dict[str, Any]:
    """The task's candidates, restricted to ``only`` (which must all be candidates)."""
    pool = candidates(task, random_state)
    if only:
        unknown = set(only) - set(pool)
        if unknown:
            raise ValueError(f"unknown candidates {sorted(unknown)}; choose from {sorted(pool)}")
        pool = {k: v for k, v in pool.items() if k in only}
    return pool


def _select_and_refit(
    pool: dict[str, Any],
    numeric: list[str],
    categorical: list[str],
    X: pd.DataFrame,
    y: pd.Series,
    folds: Any,
    scoring: str,
) -> tuple[Pipeline, str, dict[str, list[float]]]:
    """Cross-validate every candidate, refit the best mean score on all rows."""
    scores: dict[str, list[float]] = {}
    # One OpenMP/BLAS thread: on a busy 2-core host, HistGradientBoosting's thread pool
    # made training about 5x slower (13 s vs 2.7 s at 5,000 rows) than a single thread.
    with threadpool_limits(limits=1):
        for name, est in pool.items():
            pipe = Pipeline([("prep", build_preprocessor(numeric, categorical)), ("model", est)])
            scores[name] = [
                float(s) for s in cross_val_score(pipe, X, y, cv=folds, scoring=scoring)
            ]
        best = max(scores, key=lambda k: np.mean(scores[k]))
        model = Pipeline(
            [("prep", build_preprocessor(numeric, categorical)), ("model", clone(pool[best]))]
        )
        model.fit(X, y)
    return model, best, scores


#: reference rows whose outputs and out-of-fold losses are kept with the profile
REFERENCE_OUTPUT_ROWS = 2_000


def reference_outputs(
    result: TrainResult, frame: pd.DataFrame, *, random_state: int = 0
) -> pd.DataFrame:
    """The model's outputs on (a sample of) its training rows, and out-of-fold losses.

    The drift check on the prediction log compares these with what the model serves:
    ``__prediction__`` (its prediction, or the predicted class) and ``__loss__`` (the
    loss of a refit on the other folds — the training rows' own loss would be optimistic;
    absolute error or log loss, as live looks score). A model that cannot be refitted
    (a user trainer's) gets no ``__loss__``; the monitor then skips live performance.
    """
    rows = frame.dropna(subset=[result.target])
    if len(rows) > REFERENCE_OUTPUT_ROWS:
        rows = rows.sample(REFERENCE_OUTPUT_ROWS, random_state=random_state)
    X = prepare_features(rows, result.features, result.categorical)
    y = rows[result.target]
    out = pd.DataFrame(index=rows.index)
    pred = result.model.predict(X)
    out[PREDICTION] = (
        pd.Series(pred, index=rows.index).astype(str)
        if result.task == "classification"
        else pd.Series(pred, index=rows.index, dtype=float)
    )
    folds = KFold(3, shuffle=True, random_state=random_state)
    try:
        if result.task == "classification":
            proba = cross_val_predict(clone(result.model), X, y, cv=folds, method="predict_proba")
            labels = y.to_numpy()
            classes = np.unique(labels)  # the estimator's classes_ order: sorted labels
            col = np.searchsorted(classes, labels)
            eps = np.finfo(np.float64).eps
            out[LOSS] = -np.log(np.clip(proba[np.arange(len(y)), col], eps, 1 - eps))
        else:
            oof = cross_val_predict(clone(result.model), X, y.astype(float), cv=folds)
            out[LOSS] = np.abs(y.astype(float).to_numpy() - oof)
    except Exception:  # noqa: BLE001 - a model sklearn cannot refit: no offline loss
        pass
    return out
