"""Linear heads: ``X @ coef_.T + intercept_``, as scikit-learn's ``_decision_function``.

Regressors return the decision; ``LogisticRegression`` applies scikit-learn's own link
(``expit`` and ``[1 - p, p]`` for two classes, ``softmax`` otherwise) and class rule
(``> 0`` for two classes, ``argmax`` otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.utils.extmath import softmax

_REGRESSORS = (LinearRegression, Ridge, Lasso, ElasticNet)


class LinearHead:
    """A compiled linear model."""

    allows_nan = False

    def __init__(self, est: Any) -> None:
        self.coef_t = np.asarray(est.coef_, dtype=np.float64).T
        self.intercept = np.asarray(est.intercept_, dtype=np.float64)
        self.is_classifier = type(est) is LogisticRegression
        self.classes_ = np.asarray(est.classes_) if self.is_classifier else None

    def decision(self, X: np.ndarray) -> np.ndarray:
        scores = X @ self.coef_t + self.intercept
        if self.is_classifier and scores.ndim == 2 and scores.shape[1] == 1:
            return scores.ravel()
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = self.decision(X)
        if not self.is_classifier:
            return scores
        assert self.classes_ is not None  # set for every classifier
        indices = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[indices]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.is_classifier:
            raise AttributeError("predict_proba of a regressor")
        scores = self.decision(X)
        assert self.classes_ is not None  # set for every classifier
        if len(self.classes_) <= 2:
            prob = expit(scores)
            return np.stack([1 - prob, prob], axis=1)
        return softmax(scores, copy=False)

    def nbytes(self) -> int:
        return int(self.coef_t.nbytes + self.intercept.nbytes)


def compile_linear(est: Any) -> LinearHead | None:
    """A :class:`LinearHead` for a supported linear model, None for other estimators."""
    if type(est) in _REGRESSORS or type(est) is LogisticRegression:
        return LinearHead(est)
    return None
