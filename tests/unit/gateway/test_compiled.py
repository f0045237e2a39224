"""Compiled scoring: exact on every supported kind, verified, and falling back with a reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import ensemble, linear_model
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from dethrone.pipeline.features import build_preprocessor, prepare_features, split_columns
from dethrone.slices.datasets import load_dataset
from dethrone_router.gateway.compiled import CompiledModel, compile_model, parse_mode

TOL = 1e-9


@pytest.fixture(scope="module")
def diamonds():
    """1,200 diamonds as the gateway gets them (text as object), with their numeric and
    categorical columns; ``price`` is the regression target."""
    frame = load_dataset().sample(1200, random_state=0)
    numeric, categorical = split_columns(frame, "price")
    X = prepare_features(frame, numeric + categorical, categorical)
    return frame, X, numeric, categorical


@pytest.fixture(scope="module")
def iris_like():
    """Three classes from four numbers and a colour, with NaN in the numbers."""
    rng = np.random.default_rng(1)
    n = 450
    label = np.repeat(np.array(["setosa", "versicolor", "virginica"]), n // 3)
    centre = np.repeat(np.arange(3.0), n // 3)
    X = pd.DataFrame(
        {f"x{i}": centre * (i + 1) * 0.7 + rng.normal(0, 1, n) for i in range(4)}
        | {"colour": rng.choice(["red", "green", "blue"], n).astype(object)}
    )
    X.loc[rng.choice(n, 20, replace=False), "x1"] = np.nan
    return X, pd.Series(label)


def pipe(numeric, categorical, est):
    return Pipeline([("prep", build_preprocessor(numeric, categorical)), ("model", est)])


def assert_same(model, result: CompiledModel, rows: pd.DataFrame) -> None:
    expected = model.predict(rows)
    got = result.predict(rows)
    if hasattr(model, "classes_"):
        assert np.array_equal(got, expected)
        np.testing.assert_allclose(
            result.predict_proba(rows), model.predict_proba(rows), rtol=TOL, atol=0
        )
        assert np.array_equal(result.classes_, model.classes_)
    else:
        np.testing.assert_allclose(got, expected, rtol=TOL, atol=0)


REGRESSORS = [
    ensemble.RandomForestRegressor(n_estimators=8, min_samples_leaf=2, random_state=0),
    ensemble.ExtraTreesRegressor(n_estimators=8, random_state=0),
    ensemble.GradientBoostingRegressor(n_estimators=15, random_state=0),
    ensemble.HistGradientBoostingRegressor(max_iter=15, random_state=0),
    linear_model.LinearRegression(),
    linear_model.Ridge(alpha=1.0),
    linear_model.Lasso(alpha=1.0, max_iter=5000),
]
CLASSIFIERS = [
    ensemble.RandomForestClassifier(n_estimators=8, random_state=0),
    ensemble.ExtraTreesClassifier(n_estimators=8, random_state=0),
    ensemble.GradientBoostingClassifier(n_estimators=8, random_state=0),
    ensemble.HistGradientBoostingClassifier(max_iter=8, random_state=0),
    linear_model.LogisticRegression(max_iter=1000),
]


@pytest.mark.parametrize("est", REGRESSORS, ids=lambda e: type(e).__name__)
def test_regression_pipelines_on_diamonds_are_compiled_and_exact(diamonds, est):
    frame, X, numeric, categorical = diamonds
    model = pipe(numeric, categorical, est).fit(X, frame["price"].astype(float))
    result = compile_model(model, X.sample(150, random_state=1))
    assert result.compiled, result.reason
    assert result.reason.startswith("verified on")
    assert result.predict_proba is None and result.classes_ is None
    rows = X.sample(300, random_state=2)
    assert_same(model, result, rows)
    # the gateway's column -> array form gives the same answers, compiled
    before = result.calls.compiled
    np.testing.assert_allclose(
        result.predict({c: rows[c].to_numpy() for c in rows.columns}), model.predict(rows), rtol=TOL
    )
    assert result.calls.compiled == before + 1


@pytest.mark.parametrize("binary", [False, True], ids=["multiclass", "binary"])
@pytest.mark.parametrize("est", CLASSIFIERS, ids=lambda e: type(e).__name__)
def test_classification_pipelines_are_compiled_and_exact(iris_like, est, binary):
    X, y = iris_like
    if binary:
        y = y.where(y == "setosa", "other")
    model = pipe([f"x{i}" for i in range(4)], ["colour"], est).fit(X, y)
    result = compile_model(model, X.sample(100, random_state=3))
    assert result.compiled, result.reason
    assert_same(model, result, X)


def test_diamond_cut_classifier_with_categorical_columns(diamonds):
    frame, X, numeric, categorical = diamonds
    cats = [c for c in categorical if c != "cut"]
    model = pipe(numeric, cats, ensemble.RandomForestClassifier(10, random_state=0))
    model.fit(X.drop(columns="cut"), X["cut"])
    rows = X.drop(columns="cut")
    result = compile_model(model, rows.head(50))
    assert result.compiled, result.reason
    assert_same(model, result, rows)


def test_nan_and_unseen_categories_are_scored_like_the_model(diamonds):
    frame, X, numeric, categorical = diamonds
    model = pipe(numeric, categorical, ensemble.RandomForestRegressor(10, random_state=0))
    model.fit(X, frame["price"].astype(float))
    result = compile_model(model, X.head(40))
    assert result.compiled, result.reason
    rows = X.head(30).copy()
    rows.loc[rows.index[::2], "carat"] = np.nan
    rows.loc[rows.index[::3], "color"] = "Z-unseen"
    rows.loc[rows.index[1::4], "clarity"] = np.nan
    before = result.calls.compiled
    assert_same(model, result, rows)
    assert result.calls.compiled == before + 1  # no hand-back: NaN and unseen are compiled


def test_raw_diamonds_with_category_dtype_columns(diamonds):
    frame, X, numeric, categorical = diamonds
    model = pipe(numeric, categorical, ensemble.HistGradientBoostingRegressor(max_iter=10))
    model.fit(X, frame["price"].astype(float))
    raw = frame.drop(columns="price")  # cut, color, clarity as pandas categoricals
    result = compile_model(model, raw.head(60))
    assert result.compiled, result.reason
    assert_same(model, result, raw)


def test_inputs_it_was_not_verified_for_go_to_the_model(diamonds):
    frame, X, numeric, categorical = diamonds
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), numeric),
            ("cat", OneHotEncoder(handle_unknown="error", sparse_output=False), categorical),
        ]
    )
    model = Pipeline([("prep", prep), ("model", linear_model.Ridge())])
    model.fit(X, frame["price"].astype(float))
    result = compile_model(model, X.head(50))
    assert result.compiled, result.reason
    unseen = X.head(3).assign(color="Z")
    with pytest.raises(ValueError, match="unknown categor"):
        result.predict(unseen)  # the encoder's own error, as before
    with pytest.raises(ValueError):
        result.predict(X.head(3).assign(carat=np.nan))  # Ridge refuses NaN itself
    float32 = X.head(5).astype({"carat": np.float32})
    np.testing.assert_allclose(result.predict(float32), model.predict(float32), rtol=TOL)
    assert result.calls.delegated == 3


@pytest.mark.parametrize(
    ("model_factory", "reason"),
    [
        (
            lambda: Pipeline(
                [
                    (
                        "prep",
                        ColumnTransformer([("text", HashingVectorizer(n_features=8), "name")]),
                    ),
                    ("model", linear_model.Ridge()),
                ]
            ),
            "unsupported step HashingVectorizer",
        ),
        (
            lambda: Pipeline([("model", ensemble.AdaBoostRegressor(n_estimators=3))]),
            "unsupported estimator AdaBoostRegressor",
        ),
        (
            lambda: Pipeline(
                [
                    (
                        "prep",
                        ColumnTransformer([("num", SimpleImputer(add_indicator=True), ["x"])]),
                    ),
                    ("model", linear_model.Ridge()),
                ]
            ),
            "SimpleImputer with add_indicator=True",
        ),
    ],
    ids=["hashing", "adaboost", "indicator"],
)
def test_unsupported_parts_fall_back_with_the_reason(model_factory, reason):
    X = pd.DataFrame({"name": ["a b", "b c", "c d", "d e"] * 5, "x": np.arange(20.0)})
    X.loc[3, "x"] = np.nan
    model = model_factory()
    fit_on = X if "HashingVectorizer" in reason else X[["x"]].fillna(0.0) if "Ada" in reason else X
    model.fit(fit_on, np.arange(20.0))
    result = compile_model(model, fit_on)
    assert not result.compiled
    assert result.reason == reason
    np.testing.assert_array_equal(result.predict(fit_on), model.predict(fit_on))


def test_off_and_missing_reference_rows_serve_the_model(iris_like):
    X, y = iris_like
    model = pipe([f"x{i}" for i in range(4)], ["colour"], linear_model.LogisticRegression()).fit(
        X, y
    )
    off = compile_model(model, X, mode="off")
    assert (off.compiled, off.reason) == (False, "SERVING_COMPILE=off")
    assert np.array_equal(off.predict_proba(X), model.predict_proba(X))
    assert list(off.classes_) == ["setosa", "versicolor", "virginica"]
    empty = compile_model(model, X.head(0))
    assert (empty.compiled, empty.reason) == (False, "no reference rows to verify on")
    with pytest.raises(ValueError, match="SERVING_COMPILE"):
        parse_mode("on")


def test_verification_refuses_a_planted_wrong_threshold(diamonds, monkeypatch):
    frame, X, numeric, categorical = diamonds
    model = pipe(numeric, categorical, ensemble.RandomForestRegressor(10, random_state=0))
    model.fit(X, frame["price"].astype(float))
    from dethrone_router.gateway.compile import trees

    real = trees.NodeTable.__init__

    def planted(self, *args, **kwargs):
        real(self, *args, **kwargs)
        root = int(self.roots[0])
        self.threshold[root] += 0.25  # the first tree's first split moves a little

    monkeypatch.setattr(trees.NodeTable, "__init__", planted)
    result = compile_model(model, X.head(200))
    assert not result.compiled
    assert result.reason.startswith("verification failed: max relative difference")
    assert "rows" in result.reason
    np.testing.assert_array_equal(result.predict(X.head(20)), model.predict(X.head(20)))


def test_verification_refuses_double_comparisons_without_the_float32_cast(diamonds, monkeypatch):
    """The trap of a double-precision evaluator: scikit-learn compares float32(x) with the
    thresholds. On diamonds even the reference rows catch an evaluator that does not cast
    (values like depth 61.5, scaled, sit right on the midpoints the trees split at), and
    the rows placed on split thresholds do too."""
    frame, X, numeric, categorical = diamonds
    model = pipe(numeric, categorical, ensemble.RandomForestRegressor(10, random_state=0))
    model.fit(X, frame["price"].astype(float))
    from dethrone_router.gateway.compile import trees

    real = trees.NodeTable.__init__

    def no_cast(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.float32 = False

    monkeypatch.setattr(trees.NodeTable, "__init__", no_cast)
    result = compile_model(model, X.head(100))
    assert not result.compiled
    assert result.reason.startswith("verification failed: max relative difference")
    assert "reference" in result.reason


def test_wrong_class_decision_is_refused(iris_like, monkeypatch):
    X, y = iris_like
    model = pipe([f"x{i}" for i in range(4)], ["colour"], linear_model.LogisticRegression()).fit(
        X, y
    )
    from dethrone_router.gateway.compile import linear

    monkeypatch.setattr(
        linear.LinearHead, "predict", lambda self, X: self.classes_[np.zeros(len(X), int)]
    )
    result = compile_model(model, X)
    assert not result.compiled
    assert "predicted class differs" in result.reason
