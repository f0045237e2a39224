"""TRAINER: a user's callable replaces the built-in candidates and is cross-validated too."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.dummy import DummyRegressor

from dethrone.pipeline.trainer import load_trainer
from dethrone.pipeline.training import prepare_features, train
from dethrone.settings import Settings

SEEN: list[pd.DataFrame] = []


def mean_trainer(frame: pd.DataFrame, settings: Settings) -> DummyRegressor:
    """A trainer that remembers what it was given."""
    SEEN.append(frame)
    return DummyRegressor().fit(frame.drop(columns=[settings.target]), frame[settings.target])


@pytest.fixture(scope="module")
def rows(diamonds) -> pd.DataFrame:
    return diamonds.sample(400, random_state=1).reset_index(drop=True)


def test_trainer_replaces_the_candidates(rows):
    SEEN.clear()
    s = Settings(trainer=f"{__name__}:mean_trainer", cv_folds=3)
    result = train(rows, s)
    assert isinstance(result.model, DummyRegressor) and result.best == s.trainer.join(
        ["trainer:", ""]
    )
    assert len(SEEN) == 4 and len(SEEN[-1]) == len(rows)  # three folds, then all rows
    assert set(SEEN[-1].columns) == set(result.features) | {"price"}
    assert len(result.cv_scores[result.best]) == 3 and result.cv_mean() < 0
    X = prepare_features(rows, result.features, result.categorical)
    assert result.model.predict(X) == pytest.approx(rows["price"].mean())


def test_example_trainer_fits_a_usable_model(rows):
    result = train(rows, Settings(trainer="dethrone.pipeline.trainer:example_trainer", cv_folds=2))
    X = prepare_features(rows, result.features, result.categorical)
    assert result.model.predict(X).shape == (len(rows),) and result.task == "regression"


@pytest.mark.parametrize(
    "spec, match",
    [
        ("no_colon", "package.module:function"),
        ("dethrone.nope:f", "cannot import"),
        ("dethrone.pipeline.trainer:missing", "no callable"),
    ],
)
def test_bad_trainer_names_the_setting(spec, match):
    with pytest.raises(ValueError, match=match):
        load_trainer(spec)
