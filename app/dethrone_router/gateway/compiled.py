"""Compiled scoring of scikit-learn pipelines, verified against the model before serving.

:func:`compile_model` turns a fitted estimator - typically a ``Pipeline`` of a
``ColumnTransformer`` (``SimpleImputer``, ``StandardScaler``, ``OneHotEncoder``,
passthrough) and a tree ensemble or linear model - into numpy code in double precision,
checks it against the model's own ``predict``/``predict_proba`` on reference rows and edge
rows made from them, and returns a :class:`CompiledModel`: the compiled callables when they
agree (within 1e-9 relative, identical classes), else the model's own methods and the
reason.

Choice: our own vectorised numpy evaluator
------------------------------------------
Measured on the demo champion kind (40-tree RandomForestRegressor pipeline, 5,000 diamonds,
trees 27 levels deep, 109k nodes), median per call, one thread, on this 2-core machine
shared with other work (load 5.9) - ``bench/compile_bench.py --candidates``:

======================  =========  ==========  ==========  ==============================
path                    1 row      64 rows     256 rows    exactness, 1,000 rows
======================  =========  ==========  ==========  ==============================
scikit-learn predict    15.4 ms    15.4 ms     20.3 ms     (reference)
numpy evaluator (this)  0.18 ms    0.61 ms     6.7 ms      bit-for-bit equal
ONNX Runtime 1.31       0.11 ms    0.28 ms     1.9 ms      max rel. 3.2e-2, 994 rows off
======================  =========  ==========  ==========  ==============================

ONNX Runtime is faster but cannot be exact here: skl2onnx 1.20 refuses
``SimpleImputer(missing_values=nan)`` on text columns (the bench converts a copy), and in
double precision it emits a ``TreeEnsembleRegressor`` with a double output that ONNX
Runtime refuses to load, so only the float32 graph runs - 3e-2 off. With 1 row as a
``column -> array`` mapping (no DataFrame) the numpy path takes 0.08 ms. The numpy
evaluator is exact by construction - it repeats scikit-learn's float32 cast of X before
the tree comparisons, its summation order, its links and class rules - needs no new
dependency and no model conversion, and handles text categories, NaN and unseen categories
in Python as scikit-learn does. See :mod:`dethrone_router.gateway.compile` for the parts.

Serving
-------
``predict(data)`` and ``predict_proba(data)`` take a DataFrame or a ``column -> array``
mapping (what the gateway's batcher builds, so it can skip the DataFrame). An input the
compiled path was not verified for - a column of another dtype, an unknown category under
``handle_unknown="error"``, NaN where the model raises, zero rows - goes to the model
itself (:class:`~dethrone_router.gateway.compile.program.Delegate`), so answers and errors
stay the model's own; :attr:`CompiledModel.calls` counts both paths.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dethrone_router.gateway.compile.preprocess import build_program
from dethrone_router.gateway.compile.program import Delegate, Program, Unsupported
from dethrone_router.gateway.compile.verify import REL_TOL, verify

__all__ = ["COMPILE_MODES", "REL_TOL", "CallCounts", "CompiledModel", "compile_model", "parse_mode"]

#: values of ``SERVING_COMPILE``; ``auto`` is the default
COMPILE_MODES = ("auto", "off")
#: reference rows beyond this many are sampled down (verification time stays bounded)
MAX_REFERENCE_ROWS = 2000

Data = pd.DataFrame | Mapping[str, Any]


def parse_mode(value: str | None) -> str:
    """``SERVING_COMPILE`` as a mode: empty means ``auto``; anything else is an error.

    >>> parse_mode(None), parse_mode(" OFF ")
    ('auto', 'off')
    """
    mode = (value or "auto").strip().lower()
    if mode not in COMPILE_MODES:
        raise ValueError(
            f"SERVING_COMPILE must be one of {', '.join(COMPILE_MODES)}, got {value!r}"
        )
    return mode


class CallCounts:
    """Calls served by the compiled path and calls handed to the model (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.compiled = 0
        self.delegated = 0

    def add(self, compiled: bool) -> None:
        with self._lock:
            if compiled:
                self.compiled += 1
            else:
                self.delegated += 1

    def __repr__(self) -> str:
        return f"CallCounts(compiled={self.compiled}, delegated={self.delegated})"


@dataclass(frozen=True)
class CompiledModel:
    """How one model version scores.

    Attributes
    ----------
    compiled : bool
        True when the compiled path serves (verified); False: the model's own methods.
    reason : str
        Why: ``"verified on 540 rows (max relative difference 0.0e+00)"``, ``"unsupported
        step HashingVectorizer"``, ``"max relative difference 3e-06 on 2 of 500 rows
        (...)"``, ``"SERVING_COMPILE=off"``...
    predict : callable
        ``predict(data) -> ndarray`` for a DataFrame or ``column -> array`` mapping.
    predict_proba : callable or None
        Class probabilities for classifiers with ``predict_proba``, else None.
    classes_ : ndarray or None
        The model's classes (classifiers).
    checked_rows : int
        Rows compared during verification.
    nbytes : int
        Bytes of the arrays the compiled program holds (0 when not compiled).
    calls : CallCounts
        Calls answered by the compiled path and calls handed to the model.
    score : callable
        ``score(data, want_proba) -> (labels, probabilities or None)``: both from one
        reading of the input (the gateway's batcher calls this).
    """

    compiled: bool
    reason: str
    predict: Callable[[Data], np.ndarray]
    predict_proba: Callable[[Data], np.ndarray] | None
    classes_: np.ndarray | None
    checked_rows: int = 0
    nbytes: int = 0
    calls: CallCounts = field(default_factory=CallCounts, compare=False, repr=False)
    score: Callable[[Data, bool], tuple[np.ndarray, np.ndarray | None]] | None = field(
        default=None, compare=False, repr=False
    )


def _frame(data: Data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    # Object columns stay object: pandas 3 would make text arrays its Arrow str dtype, which
    # the model's encoders turn back into objects on every call (as the gateway's batcher).
    return pd.DataFrame(
        {
            c: pd.Series(v, dtype=object, copy=False)
            if getattr(v, "dtype", None) is np.dtype(object)
            else v
            for c, v in data.items()
        },
        copy=False,
    )


def _reference_frame(rows: Any) -> pd.DataFrame | None:
    if rows is None:
        return None
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    if len(frame) > MAX_REFERENCE_ROWS:
        frame = frame.sample(MAX_REFERENCE_ROWS, random_state=0)
    return frame if len(frame) else None


def _model_methods(model: Any, reason: str, counts: CallCounts | None = None) -> CompiledModel:
    counts = counts or CallCounts()

    def predict(data: Data) -> np.ndarray:
        return model.predict(_frame(data))

    proba = getattr(model, "predict_proba", None) if hasattr(model, "classes_") else None
    classes = getattr(model, "classes_", None)

    def score(data: Data, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        frame = _frame(data)
        labels = model.predict(frame)
        return labels, (proba(frame) if want_proba and proba is not None else None)

    return CompiledModel(
        compiled=False,
        reason=reason,
        predict=predict,
        predict_proba=None if proba is None else (lambda data: proba(_frame(data))),
        classes_=None if classes is None else np.asarray(classes),
        calls=counts,
        score=score,
    )


def _serving(model: Any, program: Program, reason: str, rows: int) -> CompiledModel:
    counts = CallCounts()

    def predict(data: Data) -> np.ndarray:
        try:
            out = program.predict(data)
        except Delegate:
            counts.add(False)
            return model.predict(_frame(data))
        counts.add(True)
        return out

    def predict_proba(data: Data) -> np.ndarray:
        try:
            out = program.predict_proba(data)
        except Delegate:
            counts.add(False)
            return model.predict_proba(_frame(data))
        counts.add(True)
        return out

    classifier = program.head.is_classifier
    head = program.head

    def score(data: Data, want_proba: bool) -> tuple[np.ndarray, np.ndarray | None]:
        want_proba = want_proba and classifier
        try:
            X = program.features(data)
            labels = head.predict(X)
            proba = head.predict_proba(X) if want_proba else None
        except Delegate:
            counts.add(False)
            frame = _frame(data)
            labels = model.predict(frame)
            return labels, (model.predict_proba(frame) if want_proba else None)
        counts.add(True)
        return labels, proba

    return CompiledModel(
        compiled=True,
        reason=reason,
        predict=predict,
        predict_proba=predict_proba if classifier else None,
        classes_=program.head.classes_ if classifier else None,
        checked_rows=rows,
        nbytes=program.nbytes(),
        calls=counts,
        score=score,
    )


def compile_model(model: Any, reference_rows: Any, *, mode: str = "auto") -> CompiledModel:
    """Compile ``model`` and verify it on ``reference_rows`` before it may serve.

    Parameters
    ----------
    model : fitted scikit-learn estimator or Pipeline
        What ``mlflow.sklearn`` loads (``pyfunc_model.get_raw_model()``).
    reference_rows : DataFrame, mapping of columns or list of row dicts
        Rows the model takes: its signature's input example or a sample of its training
        data (more rows check more paths; at most 2,000 are used).
    mode : {"auto", "off"}
        ``SERVING_COMPILE``; ``off`` serves the model's own methods.

    Returns
    -------
    CompiledModel
        ``compiled=True`` with the compiled callables, or ``compiled=False`` with the
        model's own methods and the reason. Never raises for a model it cannot compile.
    """
    mode = parse_mode(mode)
    if mode == "off":
        return _model_methods(model, "SERVING_COMPILE=off")
    reference = _reference_frame(reference_rows)
    if reference is None:
        return _model_methods(model, "no reference rows to verify on")
    try:
        program = build_program(model)
    except Unsupported as exc:
        return _model_methods(model, str(exc))
    except Exception as exc:  # noqa: BLE001 - a model this module misreads: serve it as is
        return _model_methods(model, f"compile error: {type(exc).__name__}: {exc}")
    try:
        verdict = verify(model, program, reference)
    except Exception as exc:  # noqa: BLE001 - same: the model's own methods are always safe
        return _model_methods(model, f"verification error: {type(exc).__name__}: {exc}")
    if not verdict.ok:
        return _model_methods(model, f"verification failed: {verdict.reason}")
    return _serving(model, program, verdict.reason, verdict.rows)
