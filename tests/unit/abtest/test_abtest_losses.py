"""Per-row loss helpers: their means equal the sklearn.metrics scores."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from dethrone.abtest import losses


def test_absolute_and_squared_error_match_sklearn(rng):
    y = rng.lognormal(8, 1, 500)
    pred = y * rng.lognormal(0, 0.3, 500)
    assert losses.absolute_error(y, pred).mean() == pytest.approx(
        metrics.mean_absolute_error(y, pred), rel=1e-12
    )
    assert losses.squared_error(y, pred).mean() == pytest.approx(
        metrics.mean_squared_error(y, pred), rel=1e-12
    )
    assert losses.absolute_error(y, pred).shape == (500,)


def test_binary_log_loss_matches_sklearn_with_1d_and_2d_probabilities(rng):
    y = rng.integers(0, 2, 400)
    p1 = rng.uniform(0, 1, 400)
    p1[:3] = [0.0, 1.0, 1.0]  # confident mistakes and hits exercise the clipping
    expected = metrics.log_loss(y, p1)
    assert losses.log_loss(y, p1).mean() == pytest.approx(expected, rel=1e-12)
    two = np.column_stack([1 - p1, p1])
    assert losses.log_loss(y, two).mean() == pytest.approx(expected, rel=1e-12)
    assert np.all(np.isfinite(losses.log_loss(y, p1)))


def test_multiclass_log_loss_with_string_labels_matches_sklearn(rng):
    labels = np.array(["cat", "dog", "emu"])
    y = labels[rng.integers(0, 3, 300)]
    proba = rng.dirichlet([1, 2, 3], 300)
    assert losses.log_loss(y, proba).mean() == pytest.approx(metrics.log_loss(y, proba), rel=1e-12)
    # Explicit labels also cover a class that never occurs in y_true.
    y2 = np.where(y == "emu", "dog", y)
    assert losses.log_loss(y2, proba, labels=labels).mean() == pytest.approx(
        metrics.log_loss(y2, proba, labels=labels), rel=1e-12
    )


def test_zero_one_loss_matches_sklearn(rng):
    y = rng.integers(0, 4, 250)
    pred = np.where(rng.uniform(size=250) < 0.7, y, rng.integers(0, 4, 250))
    assert losses.zero_one_loss(y, pred).mean() == pytest.approx(
        metrics.zero_one_loss(y, pred), rel=1e-12
    )


def test_row_losses_dispatches_by_name(rng):
    y, pred = rng.normal(size=50), rng.normal(size=50)
    np.testing.assert_array_equal(
        losses.row_losses("absolute", y, pred), losses.absolute_error(y, pred)
    )
    with pytest.raises(ValueError, match="unknown loss"):
        losses.row_losses("hinge", y, pred)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: losses.absolute_error([], []), "empty"),
        (lambda: losses.absolute_error([1.0, 2.0], [1.0]), "rows"),
        (lambda: losses.log_loss([0, 1], [0.2, 1.5]), r"\[0, 1\]"),
        (lambda: losses.log_loss([0, 1], [0.2, np.nan]), "finite"),
        (lambda: losses.log_loss([0, 1, 2], [0.2, 0.3, 0.4]), "binary"),
        (lambda: losses.log_loss([0, 1, 2], np.full((3, 2), 0.5)), "columns"),
        (lambda: losses.log_loss([0, 3], np.full((2, 2), 0.5), labels=[0, 1]), "not in labels"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
