"""Proper per-row losses of logged predictions against their labels, as a look scores them.

The gateway logs a regressor's prediction as a number and a classifier's as
``{class: probability}`` (or the bare class when the model has no probabilities). A live
experiment scores them with the same loss the offline pre-screen uses, so the live and the
offline numbers mean the same thing:

========================  =============================================  ==================
name                      per row                                        unit
========================  =============================================  ==================
``absolute_error``        ``|y - ŷ|``                                    the target's unit
``squared_error``         ``(y - ŷ)²``                                   its square
``log_loss``              ``-log p(y)``, p clipped to [eps, 1 - eps]     nats
``brier``                 ``Σ_k (p_k - [k = y])²``                       probability²
``zero_one_loss``         ``[argmax p ≠ y]`` (only without probabilities) error share
========================  =============================================  ==================

Classes are compared as text (``1.0`` and ``"1"`` are the same class), never as numbers: a
prediction of class 2 for label 0 costs what any wrong class costs, not 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

__all__ = ["LOSS_UNITS", "LIVE_LOSSES", "live_losses", "loss_for", "loss_unit"]

#: clip of probabilities in the log loss: scikit-learn's default (float64's epsilon), as
#: the offline pre-screen's ``abtest.log_loss``
EPS = float(np.finfo(np.float64).eps)

LOSS_UNITS = {
    "absolute_error": "{target} units",
    "squared_error": "squared {target} units",
    "log_loss": "nats",
    "brier": "probability²",
    "zero_one_loss": "share of wrong classes",
}
LIVE_LOSSES = tuple(LOSS_UNITS)
_REGRESSION = ("absolute_error", "squared_error")


def loss_unit(name: str, target: str = "target") -> str:
    """The unit of loss ``name`` in words (``"price units"`` for absolute error on price).

    >>> loss_unit("absolute_error", "price")
    'price units'
    >>> loss_unit("log_loss")
    'nats'
    """
    return LOSS_UNITS[name].format(target=target)


def loss_for(setting: str, predictions: Sequence[Any]) -> str:
    """The loss a look uses: ``setting`` unless it is ``auto``, else by what was logged.

    ``auto`` is the absolute error for numbers, the log loss for class probabilities and
    the 0/1 loss only for a classifier that logged bare classes.

    >>> loss_for("auto", [1.5, 2.0])
    'absolute_error'
    >>> loss_for("auto", [{"a": 0.9, "b": 0.1}])
    'log_loss'
    >>> loss_for("brier", [])
    'brier'
    """
    if setting != "auto":
        if setting not in LOSS_UNITS:
            raise ValueError(f"LIVE_LOSS must be auto or one of {LIVE_LOSSES}, got {setting!r}")
        return setting
    for value in predictions:
        value = _decode(value)
        if isinstance(value, dict):
            return "log_loss"
        if _is_number(value):
            return "absolute_error"
        if value is not None:
            return "zero_one_loss"
    return "absolute_error"


def live_losses(predictions: Sequence[Any], labels: Sequence[Any], loss: str) -> np.ndarray:
    """Per-row ``loss`` of ``predictions`` against ``labels`` (NaN where not scorable).

    Values may be decoded JSON or its text (as the database returns it). A row is NaN when
    its label is missing, its prediction failed (``None``), or a regression loss meets a
    non-numeric value; a classification loss on a label outside the logged classes counts
    the clipped probability (the worst loss), not NaN.

    >>> live_losses([{"a": 0.8, "b": 0.2}], ['"a"'], "log_loss").round(4).tolist()
    [0.2231]
    >>> live_losses([2], [0], "zero_one_loss").tolist()
    [1.0]
    >>> live_losses(["3.5"], ["2"], "absolute_error").tolist()
    [1.5]
    """
    if len(predictions) != len(labels):
        raise ValueError("predictions and labels must have the same length")
    if loss in _REGRESSION:
        pred, label = _floats(predictions), _floats(labels)
        diff = pred - label
        return np.abs(diff) if loss == "absolute_error" else diff * diff
    if loss not in LOSS_UNITS:
        raise ValueError(f"unknown loss {loss!r}; one of {LIVE_LOSSES}")
    score = {"log_loss": _log_loss, "brier": _brier, "zero_one_loss": _zero_one}[loss]
    out = np.full(len(labels), np.nan)
    for i, (p, y) in enumerate(zip(predictions, labels, strict=True)):
        p, y = _decode(p), _decode(y)
        if p is not None and y is not None:
            out[i] = score(p, _cls(y))
    return out


def _decode(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value  # a bare class name stored as text
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _floats(values: Sequence[Any]) -> np.ndarray:
    try:  # all plain JSON numbers (the database's text, or floats): float() per value, in C
        out = np.asarray(values, dtype=object).astype(float)
        if not np.isinf(out).any():  # "Infinity" is not a JSON number: take the slow path
            return out
    except (TypeError, ValueError):
        pass
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
        v = _decode(v)
        if _is_number(v):
            out[i] = float(v)
    return out


def _cls(value: Any) -> str:
    """A class as text: ``1.0`` → ``"1"``, ``True`` → ``"true"``."""
    if isinstance(value, bool):
        return str(value).lower()
    if _is_number(value):
        return str(int(value)) if float(value).is_integer() else str(value)
    return str(value)


def _proba(pred: Any) -> dict[str, float] | None:
    if isinstance(pred, dict) and pred:
        return {_cls(k): float(v) for k, v in pred.items()}
    return None


def _log_loss(pred: Any, label: str) -> float:
    proba = _proba(pred)
    if proba is None:  # no probabilities logged: the log loss is undefined, not 0/1
        return float("nan")
    p = min(max(proba.get(label, 0.0), EPS), 1.0 - EPS)
    return float(-np.log(p))


def _brier(pred: Any, label: str) -> float:
    proba = _proba(pred)
    if proba is None:
        return float("nan")
    total = sum((p - (1.0 if k == label else 0.0)) ** 2 for k, p in proba.items())
    return float(total + (0.0 if label in proba else 1.0))


def _zero_one(pred: Any, label: str) -> float:
    proba = _proba(pred)
    predicted = max(proba, key=proba.__getitem__) if proba else _cls(pred)
    return float(predicted != label)
