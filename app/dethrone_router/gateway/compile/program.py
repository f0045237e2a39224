"""The compiled scoring program: input columns -> preprocessing blocks -> head.

A :class:`Program` is built from a fitted estimator by
:func:`dethrone_router.gateway.compile.preprocess.build_program`. It reads the named input
columns of a DataFrame (or a ``column -> array`` mapping), runs each block's numpy steps,
joins the blocks as ``ColumnTransformer`` does (``np.hstack``), runs the steps after the
transformer and hands the float64 matrix to its head (trees or linear).

Two exceptions carry the decisions:

* :class:`Unsupported` at compile time: the estimator has a part this module does not
  compile; its message is the reason the model is served as it is.
* :class:`Delegate` at call time: this input is not one the compiled path was verified for
  (a column of another dtype, an unseen category under ``handle_unknown="error"``, NaN
  where the model itself raises, zero rows...). The caller then asks the model itself, so
  answers *and errors* stay the model's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

#: Block kinds: float64 columns, or text (object) columns.
NUM, TEXT = "num", "text"


class Unsupported(Exception):
    """The estimator cannot be compiled; ``str(exc)`` says which part and why."""


class Delegate(Exception):
    """This call's input must be scored by the model itself (``str(exc)`` says why)."""


class Step(Protocol):
    """One preprocessing step on a 2-D array."""

    in_kind: str
    out_kind: str
    #: True when output column j depends only on input column j (imputer, scaler).
    elementwise: bool

    def __call__(self, X: np.ndarray) -> np.ndarray: ...
    def nbytes(self) -> int: ...


class Head(Protocol):
    """The final estimator on the float64 feature matrix."""

    is_classifier: bool
    classes_: np.ndarray | None
    #: NaN in the feature matrix is scored (the estimator's own predict accepts it).
    allows_nan: bool

    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...
    def nbytes(self) -> int: ...


@dataclass(frozen=True)
class Block:
    """Input columns read as one 2-D array of ``kind`` and the steps run on it."""

    columns: tuple[str, ...]
    kind: str
    steps: tuple[Step, ...]


def _as_text(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            return values.to_numpy()
        if isinstance(dtype, (pd.CategoricalDtype, pd.StringDtype)):
            # as scikit-learn's check_array sees them: object values, NaN for missing
            return values.to_numpy(dtype=object)
        raise Delegate(f"column {values.name!r} has dtype {dtype}, not text")
    arr = np.asarray(values)
    if arr.dtype != object:
        raise Delegate(f"a text column has dtype {arr.dtype}")
    return arr


def _as_num(values: Any) -> np.ndarray:
    if isinstance(values, pd.Series):
        dtype = values.dtype
        if not isinstance(dtype, np.dtype):
            raise Delegate(f"column {values.name!r} has dtype {dtype}, not a numpy number")
        arr = values.to_numpy()
    else:
        arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind == "f" and arr.dtype.itemsize == 8:
        return arr
    if kind in "iu":
        # scikit-learn's check_array converts integer columns to float64 the same way
        return arr.astype(np.float64)
    # float32 would be kept as float32 by scikit-learn; bool, object: let the model decide
    raise Delegate(f"a numeric column has dtype {arr.dtype}")


class Program:
    """Preprocessing blocks, steps after them, and a head.

    Parameters
    ----------
    blocks : sequence of Block
        The ``ColumnTransformer``'s transformers (or the whole input as one block).
    post : sequence of Step
        Steps between the transformer and the head.
    head : Head
        The final estimator.
    """

    def __init__(self, blocks: Sequence[Block], post: Sequence[Step], head: Head) -> None:
        self.blocks = tuple(blocks)
        self.post = tuple(post)
        self.head = head
        kinds: dict[str, str] = {}
        for block in self.blocks:
            for col in block.columns:
                if kinds.setdefault(col, block.kind) != block.kind:
                    raise Unsupported(f"column {col!r} is used both as text and as a number")
        #: input column -> kind ("num" or "text")
        self.inputs = kinds

    def read(self, data: pd.DataFrame | Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The input columns as 1-D arrays of their kind (:class:`Delegate` otherwise)."""
        cols: dict[str, np.ndarray] = {}
        n = -1
        for name, kind in self.inputs.items():
            try:
                values = data[name]
            except (KeyError, IndexError, TypeError):
                raise Delegate(f"column {name!r} is missing") from None
            arr = _as_num(values) if kind == NUM else _as_text(values)
            if arr.ndim != 1 or (n >= 0 and len(arr) != n):
                raise Delegate("columns of different lengths")
            n = len(arr)
            cols[name] = arr
        if n == 0:
            raise Delegate("no rows")
        return cols

    def features(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The float64 matrix the head sees."""
        cols = self.read(data)
        parts = []
        for block in self.blocks:
            if block.kind == NUM:
                if len(block.columns) == 1:
                    X = cols[block.columns[0]].reshape(-1, 1)
                else:
                    X = np.column_stack([cols[c] for c in block.columns])
            else:
                first = cols[block.columns[0]]
                X = np.empty((len(first), len(block.columns)), dtype=object)
                for j, c in enumerate(block.columns):
                    X[:, j] = cols[c]
            for step in block.steps:
                X = step(X)
            parts.append(X)
        X = parts[0] if len(parts) == 1 else np.hstack(parts)
        if X.dtype != np.float64:
            raise Delegate(f"the features are {X.dtype}, not float64")
        for step in self.post:
            X = step(X)
        if not np.isfinite(X).all():
            if np.isinf(X).any() or not self.head.allows_nan:
                raise Delegate("non-finite features")
        return X

    def predict(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        return self.head.predict(self.features(data))

    def predict_proba(self, data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        return self.head.predict_proba(self.features(data))

    def nbytes(self) -> int:
        """Bytes of the arrays the program holds (its own copies of the model's data)."""
        steps = [s for b in self.blocks for s in b.steps] + list(self.post)
        return sum(s.nbytes() for s in steps) + self.head.nbytes()
