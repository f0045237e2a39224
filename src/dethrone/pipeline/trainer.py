"""A user's own trainer (``TRAINER=package.module:function``) in place of the candidates.

Most teams train models their own way. The callable gets the training rows (features as
the model will see them, categoricals as strings, plus the target column) and the
settings, and returns a fitted scikit-learn compatible estimator (``predict``, and
``predict_proba`` for classification; picklable, so MLflow can log it). dethrone still
cross-validates it with the same folds and scorer as the built-in candidates.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import get_scorer
from sklearn.pipeline import Pipeline

from dethrone.pipeline.features import build_preprocessor, split_columns
from dethrone.settings import Settings


def load_trainer(spec: str) -> Callable[[pd.DataFrame, Settings], Any]:
    """The callable named by ``TRAINER`` (``package.module:function``).

    >>> load_trainer("dethrone.pipeline.trainer:example_trainer").__name__
    'example_trainer'
    """
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"TRAINER must be package.module:function, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module), name, None)
    except ImportError as exc:
        raise ValueError(f"TRAINER {spec!r}: cannot import {module!r}: {exc}") from None
    if not callable(fn):
        raise ValueError(f"TRAINER {spec!r}: {module} has no callable {name!r}")
    return fn


def train_with(
    trainer: Callable[[pd.DataFrame, Settings], Any],
    frame: pd.DataFrame,
    X: pd.DataFrame,
    y: pd.Series,
    *,
    folds: Any,
    scoring: str,
    settings: Settings,
) -> tuple[Any, list[float]]:
    """Cross-validate a user's ``trainer`` with the built-in scorer, then fit on all rows.

    ``trainer(frame, settings)`` gets the training rows (features as the model will see
    them, plus the target column) and returns a fitted scikit-learn compatible estimator.
    """
    scorer = get_scorer(scoring)
    scores = []
    for fit_idx, test_idx in folds.split(X, y):
        est = trainer(frame.iloc[fit_idx], settings)
        scores.append(float(scorer(est, X.iloc[test_idx], y.iloc[test_idx])))
    model = trainer(frame, settings)
    if not hasattr(model, "predict"):
        raise TypeError(f"TRAINER returned {type(model).__name__}, which has no predict()")
    return model, scores


def example_trainer(frame: pd.DataFrame, settings: Settings) -> Pipeline:
    """An example ``TRAINER``: one histogram gradient boosting model (see the README)."""
    target = settings.target
    numeric, categorical = split_columns(frame, target)
    est = (
        HistGradientBoostingRegressor(random_state=settings.random_state)
        if pd.api.types.is_float_dtype(frame[target])
        else HistGradientBoostingClassifier(random_state=settings.random_state)
    )
    model = Pipeline([("prep", build_preprocessor(numeric, categorical)), ("model", est)])
    return model.fit(frame.drop(columns=[target]), frame[target])
