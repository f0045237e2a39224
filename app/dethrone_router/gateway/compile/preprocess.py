"""scikit-learn preprocessing as numpy steps, and the program builder.

Each step performs the same float64 operations, in the same order, as the fitted
scikit-learn object's ``transform`` (``X - mean_`` then ``/ scale_``; ``X[mask] =
statistics_``; one-hot columns of ``categories_``), so its output is bit-for-bit the same.
Only exact estimator types are accepted: a subclass may override ``transform``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils._missing import is_scalar_nan

from dethrone_router.gateway.compile.linear import compile_linear
from dethrone_router.gateway.compile.program import (
    NUM,
    TEXT,
    Block,
    Delegate,
    Head,
    Program,
    Step,
    Unsupported,
)
from dethrone_router.gateway.compile.trees import compile_trees


def _name(obj: Any) -> str:
    return type(obj).__name__


class Imputer:
    """``SimpleImputer(missing_values=nan)`` without indicator."""

    elementwise = True

    def __init__(self, est: SimpleImputer) -> None:
        if not is_scalar_nan(est.missing_values):
            raise Unsupported(f"SimpleImputer with missing_values={est.missing_values!r}")
        if est.add_indicator:
            raise Unsupported("SimpleImputer with add_indicator=True")
        stats = np.asarray(est.statistics_)
        if stats.dtype == object:
            self.in_kind = self.out_kind = TEXT
            if any(s is None or s != s for s in stats):
                raise Unsupported("SimpleImputer with an empty (all-missing) column")
            self.stats = stats
        else:
            self.in_kind = self.out_kind = NUM
            if np.isnan(stats).any():
                raise Unsupported("SimpleImputer with an empty (all-missing) column")
            self.stats = stats.astype(np.float64)

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.in_kind == NUM:
            mask = np.isnan(X)
        else:
            mask = X != X  # scikit-learn's _object_dtype_isnan: only float NaN is missing
        if not mask.any():
            return X
        return np.where(mask, self.stats, X)

    def nbytes(self) -> int:
        return int(self.stats.nbytes)


class Scaler:
    """``StandardScaler`` on dense float64."""

    in_kind = out_kind = NUM
    elementwise = True

    def __init__(self, est: StandardScaler) -> None:
        self.mean = None if est.mean_ is None or not est.with_mean else est.mean_
        self.scale = None if est.scale_ is None or not est.with_std else est.scale_

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.mean is not None:
            X = X - self.mean
        if self.scale is not None:
            X = X / self.scale
        return X

    def invert(self, j: int, value: float) -> float:
        """An input of column ``j`` whose output is (about) ``value``."""
        if self.scale is not None:
            value = value * self.scale[j]
        if self.mean is not None:
            value = value + self.mean[j]
        return value

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.mean, self.scale) if a is not None)


class OneHot:
    """``OneHotEncoder`` (dense float64 output, ``drop`` supported, no infrequent)."""

    out_kind = NUM
    elementwise = False

    def __init__(self, est: OneHotEncoder) -> None:
        if getattr(est, "_infrequent_enabled", False):
            raise Unsupported("OneHotEncoder with infrequent categories")
        if np.dtype(est.dtype) != np.float64:
            raise Unsupported(f"OneHotEncoder with dtype {np.dtype(est.dtype)}")
        kinds = {TEXT if np.asarray(c).dtype == object else NUM for c in est.categories_}
        if len(kinds) != 1:
            raise Unsupported("OneHotEncoder mixing text and numeric categories")
        self.in_kind = kinds.pop()
        # unknown values: all-zero columns; any other handling is left to the encoder
        self.ignore = est.handle_unknown in ("ignore", "infrequent_if_exist")
        drop = est.drop_idx_
        self.features: list[tuple[dict, int, np.ndarray]] = []
        width = 0
        for j, cats in enumerate(est.categories_):
            table: dict[Any, int] = {}
            nan_code = -1
            for code, cat in enumerate(cats.tolist()):
                if cat is not None and cat != cat:
                    nan_code = code
                else:
                    table[cat] = code
            dropped = None if drop is None or drop[j] is None else int(drop[j])
            columns = np.full(len(cats) + 1, -1, dtype=np.intp)  # last slot: unknown
            for code in range(len(cats)):
                if code != dropped:
                    columns[code] = width
                    width += 1
            self.features.append((table, nan_code, columns))
        self.width = width

    def _codes(self, values: np.ndarray, table: dict, nan_code: int) -> list[int]:
        get = table.get
        codes = []
        try:
            for v in values:
                c = get(v)
                if c is None:
                    c = nan_code if (v is not None and v != v) else -1
                    if c < 0 and not self.ignore:
                        raise Delegate("unknown category")
                codes.append(c)
        except TypeError:  # unhashable value, pd.NA
            raise Delegate("a category value the encoder must judge") from None
        return codes

    def __call__(self, X: np.ndarray) -> np.ndarray:
        n = X.shape[0]
        out = np.zeros((n, self.width), dtype=np.float64)
        rows = np.arange(n)
        for j, (table, nan_code, columns) in enumerate(self.features):
            cols = columns[self._codes(X[:, j], table, nan_code)]
            hit = cols >= 0
            out[rows[hit], cols[hit]] = 1.0
        return out

    def nbytes(self) -> int:
        # the dicts' keys are the encoder's own category objects: count the dict tables
        return sum(columns.nbytes + 64 + 48 * len(table) for table, _, columns in self.features)


def compile_step(est: Any) -> list[Step]:
    """The numpy steps of a fitted transformer (``Unsupported`` otherwise)."""
    if est is None or (isinstance(est, str) and est == "passthrough"):
        return []
    kind = type(est)
    if kind is Pipeline:
        steps: list[Step] = []
        for _, sub in est.steps:
            steps.extend(compile_step(sub))
        return steps
    if kind is SimpleImputer:
        return [Imputer(est)]
    if kind is StandardScaler:
        return [Scaler(est)]
    if kind is OneHotEncoder:
        return [OneHot(est)]
    raise Unsupported(f"unsupported step {_name(est)}")


def _check_chain(steps: list[Step], kind: str, where: str) -> str:
    for step in steps:
        if step.in_kind != kind:
            raise Unsupported(f"{where}: {type(step).__name__} gets {kind} columns")
        kind = step.out_kind
    return kind


def _block(columns: list[str], steps: list[Step], where: str) -> Block:
    kind = steps[0].in_kind if steps else NUM
    out = _check_chain(steps, kind, where)
    if out != NUM:
        raise Unsupported(f"{where} outputs text columns")
    return Block(tuple(columns), kind, tuple(steps))


def _column_transformer(ct: ColumnTransformer) -> list[Block]:
    names = getattr(ct, "feature_names_in_", None)
    if names is None:
        raise Unsupported("ColumnTransformer fitted without column names")
    blocks = []
    for name, trans, _ in ct.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        indices = ct._transformer_to_input_indices.get(name, [])
        if len(indices) == 0:
            continue
        columns = [str(names[i]) for i in indices]
        blocks.append(_block(columns, compile_step(trans), f"transformer {name!r}"))
    if not blocks:
        raise Unsupported("ColumnTransformer selects no columns")
    return blocks


def _head(est: Any):
    head: Head | None = compile_trees(est)
    if head is None:
        head = compile_linear(est)
    if head is None:
        raise Unsupported(f"unsupported estimator {_name(est)}")
    # Does the estimator itself score NaN (trees with missing-value support), or raise?
    n = getattr(est, "n_features_in_", None)
    if n is None:
        raise Unsupported(f"{_name(est)} without n_features_in_")
    probe = np.zeros((1, n))
    probe[0, 0] = np.nan
    try:
        est.predict(probe)
        head.allows_nan = True
    except ValueError:
        head.allows_nan = False
    return head


def build_program(model: Any) -> Program:
    """Compile a fitted estimator or ``Pipeline`` (``Unsupported`` says what is not)."""
    if type(model) is Pipeline:
        steps = [s for _, s in model.steps]
        final = steps[-1]
        transforms = steps[:-1]
    else:
        final, transforms = model, []
    transforms = [t for t in transforms if not (t is None or (isinstance(t, str)))]
    if transforms and type(transforms[0]) is ColumnTransformer:
        blocks = _column_transformer(transforms[0])
        transforms = transforms[1:]
    else:
        names = getattr(transforms[0] if transforms else final, "feature_names_in_", None)
        if names is None:
            raise Unsupported("fitted without column names (a numpy array, not a DataFrame)")
        first: list[Step] = compile_step(transforms[0]) if transforms else []
        blocks = [_block([str(c) for c in names], first, "the first step")]
        transforms = transforms[1:]
    post: list[Step] = []
    for t in transforms:
        if type(t) is ColumnTransformer:
            raise Unsupported("a ColumnTransformer after the first step")
        post.extend(compile_step(t))
    _check_chain(post, NUM, "a step after the transformer")
    return Program(blocks, post, _head(final))


def invertible_columns(program: Program) -> dict[int, tuple[str, Any]]:
    """Head feature index -> (input column, function from a feature value to an input).

    Only numeric blocks of element-wise steps map one input column to one feature; the
    verification uses this to place inputs right on the trees' split thresholds.
    """
    if program.post:
        return {}
    out: dict[int, tuple[str, Any]] = {}
    offset = 0
    for block in program.blocks:
        width = len(block.columns)
        if block.kind == NUM and all(s.elementwise for s in block.steps):
            scalers = tuple(reversed([s for s in block.steps if isinstance(s, Scaler)]))
            for j, col in enumerate(block.columns):
                out[offset + j] = (col, partial(_invert, scalers, j))
        else:
            width = _block_width(block)
        offset += width
    return out


def _invert(scalers: tuple[Scaler, ...], j: int, value: float) -> float:
    for s in scalers:
        value = s.invert(j, value)
    return value


def _block_width(block: Block) -> int:
    width = len(block.columns)
    for step in block.steps:
        if isinstance(step, OneHot):
            width = step.width
    return width


__all__ = ["build_program", "compile_step", "invertible_columns", "Delegate"]
