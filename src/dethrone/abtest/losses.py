"""Per-row losses: one number per scored row, smaller is better.

The A/B test compares the *distribution* of per-row losses of two models, so every
helper returns an array of shape ``(n_rows,)`` rather than a single score. The mean of
each array equals the matching :mod:`sklearn.metrics` score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["absolute_error", "squared_error", "log_loss", "zero_one_loss", "row_losses", "LOSSES"]


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {t.shape}")
    if t.size == 0:
        raise ValueError("y_true is empty")
    if p.shape[0] != t.shape[0]:
        raise ValueError(f"y_true has {t.shape[0]} rows but the prediction has {p.shape[0]}")
    return t, p


def absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    """Per-row absolute error ``|y_true - y_pred|`` (mean = mean absolute error).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n,)
        Targets and predictions.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    t, p = _pair(y_true, y_pred)
    return np.abs(t.astype(np.float64) - p.astype(np.float64))


def squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    """Per-row squared error ``(y_true - y_pred)**2`` (mean = mean squared error).

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n,)
        Targets and predictions.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    t, p = _pair(y_true, y_pred)
    return (t.astype(np.float64) - p.astype(np.float64)) ** 2


def log_loss(
    y_true: ArrayLike,
    y_proba: ArrayLike,
    *,
    labels: Sequence | None = None,
    eps: float | None = None,
) -> NDArray[np.float64]:
    """Per-row log-loss ``-log p(true class)`` with clipped probabilities.

    Parameters
    ----------
    y_true : array_like, shape (n,)
        True labels.
    y_proba : array_like, shape (n,) or (n, k)
        Predicted probabilities. A 1-D array is the probability of the larger of two
        labels (binary case); a 2-D array has one column per class, in the order of
        ``labels``.
    labels : sequence, optional
        Class labels in column order. Defaults to the sorted unique values of
        ``y_true``, as :func:`sklearn.metrics.log_loss` does.
    eps : float, optional
        Probabilities are clipped to ``[eps, 1 - eps]`` so a confident mistake costs a
        large but finite loss. Defaults to the machine epsilon of float64, as sklearn.

    Returns
    -------
    ndarray of float64, shape (n,)

    Raises
    ------
    ValueError
        If a label of ``y_true`` is not in ``labels``, the number of columns does not
        match the number of labels, or a probability is outside [0, 1] or not finite.
    """
    t, p = _pair(y_true, y_proba)
    p = p.astype(np.float64)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be finite and in [0, 1]")
    classes = np.unique(t) if labels is None else np.asarray(labels)
    if p.ndim == 1:
        if classes.size > 2:
            raise ValueError(f"1-D probabilities need a binary target, got {classes.size} labels")
        # A single observed label still defines a binary problem: treat it as the larger one.
        p = np.column_stack([1.0 - p, p])
        if classes.size == 1:
            classes = np.array([None, classes[0]], dtype=object)
    if p.ndim != 2 or p.shape[1] != classes.size:
        raise ValueError(
            f"y_proba has {p.shape[1] if p.ndim == 2 else '?'} columns "
            f"but there are {classes.size} labels"
        )
    lookup = {c: i for i, c in enumerate(classes.tolist())}
    try:
        col = np.fromiter((lookup[v] for v in t.tolist()), dtype=np.intp, count=t.size)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} of y_true is not in labels") from None
    eps = np.finfo(np.float64).eps if eps is None else float(eps)
    # Clip only the probability of the true class, without renormalising, as sklearn does,
    # so the mean of these losses equals sklearn.metrics.log_loss.
    return -np.log(np.clip(p[np.arange(t.size), col], eps, 1.0 - eps))


def zero_one_loss(y_true: ArrayLike, y_pred: ArrayLike) -> NDArray[np.float64]:
    """Per-row 0/1 loss: 1.0 where the predicted label is wrong, else 0.0.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n,)
        True and predicted labels.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    t, p = _pair(y_true, y_pred)
    return (t != p).astype(np.float64)


#: Loss helpers by name, for callers that read the loss kind from configuration.
LOSSES: dict[str, Callable[..., NDArray[np.float64]]] = {
    "absolute": absolute_error,
    "squared": squared_error,
    "log": log_loss,
    "zero_one": zero_one_loss,
}


def row_losses(kind: str, y_true: ArrayLike, y_pred: ArrayLike, **kwargs) -> NDArray[np.float64]:
    """Per-row losses of the named ``kind`` (``absolute``, ``squared``, ``log``, ``zero_one``).

    Raises
    ------
    ValueError
        If ``kind`` is unknown.
    """
    try:
        fn = LOSSES[kind]
    except KeyError:
        raise ValueError(f"unknown loss {kind!r}; choose one of {sorted(LOSSES)}") from None
    return fn(y_true, y_pred, **kwargs)
