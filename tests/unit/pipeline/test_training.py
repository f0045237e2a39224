"""Training: task inference, the preprocessing pipeline, CV model choice and seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dethrone.pipeline.training import infer_task, prepare_features, split_columns, train
from dethrone.settings import Settings


@pytest.fixture(scope="module")
def small_diamonds(diamonds) -> pd.DataFrame:
    return diamonds.sample(1200, random_state=3).reset_index(drop=True)


@pytest.mark.parametrize(
    "values, expected",
    [
        (pd.Series([1.5, 2.25, 3.0, 4.75] * 10), "regression"),
        (pd.Series(np.arange(100, dtype=float)), "regression"),
        (pd.Series([0, 1, 1, 0] * 10), "classification"),
        (pd.Series(["yes", "no"] * 10), "classification"),
        (pd.Series(pd.Categorical(["a", "b", "c"] * 5)), "classification"),
        (pd.Series([True, False] * 10), "classification"),
    ],
)
def test_infer_task(values, expected):
    assert infer_task(values) == expected


def test_explicit_task_wins_and_unknown_is_rejected():
    assert infer_task(pd.Series([0, 1] * 10), "regression") == "regression"
    with pytest.raises(ValueError, match="task must be"):
        infer_task(pd.Series([0, 1]), "ranking")


def test_split_columns_and_missing_target(small_diamonds):
    numeric, categorical = split_columns(small_diamonds, "price")
    assert set(categorical) == {"cut", "color", "clarity"}
    assert "price" not in numeric and "carat" in numeric
    with pytest.raises(ValueError, match="target column 'nope'"):
        split_columns(small_diamonds, "nope")


def test_regression_beats_constant_baseline_and_is_seeded(small_diamonds):
    settings = Settings(cv_folds=3, random_state=11)
    first = train(small_diamonds, settings, only=["ridge", "hist_gradient_boosting"])
    again = train(small_diamonds, settings, only=["ridge", "hist_gradient_boosting"])
    assert first.task == "regression" and first.scoring == "neg_mean_absolute_error"
    assert first.cv_scores == again.cv_scores
    assert first.best == max(first.cv_scores, key=lambda k: np.mean(first.cv_scores[k]))
    # the chosen model's CV MAE is far below predicting the median price for everyone
    price = small_diamonds["price"]
    baseline_mae = float(np.mean(np.abs(price - price.median())))
    assert -first.cv_mean() < 0.5 * baseline_mae


def test_refit_model_scores_unseen_categories_and_missing_values(small_diamonds):
    result = train(small_diamonds, Settings(cv_folds=2), only=["ridge"])
    new = small_diamonds.head(5).copy()
    new["color"] = new["color"].astype(str)
    new.loc[0, "color"] = "Z"  # never seen in training
    new.loc[1, "carat"] = np.nan  # missing numeric value
    pred = result.model.predict(prepare_features(new, result.features, result.categorical))
    assert pred.shape == (5,) and np.all(np.isfinite(pred))


def test_prepare_features_names_missing_columns(small_diamonds):
    with pytest.raises(ValueError, match="missing feature columns"):
        prepare_features(small_diamonds.drop(columns=["depth"]), ["carat", "depth"], [])


def test_classification_on_bundled_breast_cancer():
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    result = train(
        frame,
        Settings(cv_folds=3, random_state=5),
        target="target",
        only=["logistic_regression", "hist_gradient_boosting"],
    )
    assert result.task == "classification" and result.scoring == "neg_log_loss"
    share = frame["target"].mean()
    prior_log_loss = -(share * np.log(share) + (1 - share) * np.log(1 - share))
    assert -result.cv_mean() < 0.5 * prior_log_loss
    proba = result.model.predict_proba(prepare_features(frame.head(3), result.features, []))
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_too_few_rows_is_a_clear_error(small_diamonds):
    with pytest.raises(ValueError, match="labelled rows"):
        train(small_diamonds.head(4), Settings(cv_folds=3))
