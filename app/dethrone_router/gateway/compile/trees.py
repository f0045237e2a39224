"""Tree ensembles flattened into arrays and evaluated level by level with numpy.

All trees of an ensemble become one node table (feature, threshold, missing-goes-left,
left, right, leaf value); a leaf's children are itself, so every (row, tree) pair walks
``max_depth`` levels with a handful of vectorised gathers per level, no Python loop over
rows or trees.

Exactness, as scikit-learn computes:

* ``DecisionTree``-based ensembles (RandomForest, ExtraTrees, GradientBoosting) cast X to
  float32 and compare ``float32(x) <= threshold`` with float64 thresholds; NaN follows
  ``missing_go_to_left``. HistGradientBoosting compares float64 X with ``num_threshold``.
* Sums run in scikit-learn's order: trees one after another (a numpy reduction over the
  leading axis adds slice after slice), starting from 0 (forests), from the init estimator's
  raw prediction plus ``learning_rate * value`` (GradientBoosting) or from the baseline
  (HistGradientBoosting); forests then divide by the number of trees.
* Links and class decisions reuse the model's own loss object (``_loss.predict_proba``,
  ``_loss.link.inverse``) and its own rule (``> 0`` for HistGradientBoosting binary,
  ``>= 0`` for GradientBoosting binary, ``argmax`` otherwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

from dethrone_router.gateway.compile.program import Delegate, Unsupported

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FORESTS = (
    RandomForestRegressor,
    RandomForestClassifier,
    ExtraTreesRegressor,
    ExtraTreesClassifier,
)
_GB = (GradientBoostingRegressor, GradientBoostingClassifier)
_HGB = (HistGradientBoostingRegressor, HistGradientBoostingClassifier)


class NodeTable:
    """The nodes of ``n_trees`` trees in one set of arrays."""

    def __init__(
        self,
        trees: list[dict[str, np.ndarray]],
        n_values: int,
        *,
        float32: bool,
    ) -> None:
        roots, sizes = [], []
        offset = 0
        for t in trees:
            roots.append(offset)
            sizes.append(len(t["leaf"]))
            offset += len(t["leaf"])
        self.roots = np.asarray(roots, dtype=np.intp)
        self.n_trees = len(trees)
        cat = np.concatenate
        leaf = cat([t["leaf"] for t in trees]).astype(bool)
        own = np.arange(offset, dtype=np.intp)
        shift = np.repeat(self.roots, sizes)
        self.feature = np.where(leaf, 0, cat([t["feature"] for t in trees])).astype(np.intp)
        self.threshold = np.where(leaf, np.inf, cat([t["threshold"] for t in trees]))
        self.missing_left = cat([t["missing_left"] for t in trees]).astype(bool) & ~leaf
        left = cat([t["left"] for t in trees]).astype(np.intp) + shift
        right = cat([t["right"] for t in trees]).astype(np.intp) + shift
        # children[2 * node] is the left child, children[2 * node + 1] the right; a leaf's
        # children are itself.
        self.children = np.empty(2 * offset, dtype=np.intp)
        self.children[0::2] = np.where(leaf, own, left)
        self.children[1::2] = np.where(leaf, own, right)
        self.value = cat([t["value"] for t in trees]).reshape(offset, n_values)
        self.depth = max(int(t["depth"]) for t in trees)
        self.leaf = leaf
        self.float32 = float32

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Leaf node of every (row, tree), shape ``(n_rows * n_trees,)`` row-major."""
        if self.float32:
            if np.abs(X[~np.isnan(X)]).max(initial=0.0) > _FLOAT32_MAX:
                raise Delegate("a value too large for float32")
            X = X.astype(np.float32)
        n, d = X.shape
        flat = np.ascontiguousarray(X).ravel()
        base = np.repeat(np.arange(0, n * d, d, dtype=np.intp), self.n_trees)
        node = np.tile(self.roots, n)
        feature, threshold, children = self.feature, self.threshold, self.children
        has_nan = bool(np.isnan(flat).any())
        for level in range(self.depth):
            x = flat[base + feature[node]]
            # float32 x against a float64 threshold: numpy promotes x exactly, as C does
            right = x > threshold[node]  # NaN: False, fixed below
            if has_nan:
                missing = np.isnan(x)
                right[missing] = ~self.missing_left[node[missing]]
            node = children[2 * node + right]
            if level % 8 == 7 and self.leaf[node].all():
                break
        return node

    def nbytes(self) -> int:
        arrays = (
            self.roots,
            self.feature,
            self.threshold,
            self.missing_left,
            self.children,
            self.value,
            self.leaf,
        )
        return sum(a.nbytes for a in arrays)


def _sk_tree(est: Any) -> dict[str, np.ndarray]:
    t = est.tree_
    if t.n_outputs != 1:
        raise Unsupported("multi-output trees")
    leaf = t.children_left == -1
    return {
        "leaf": leaf,
        "feature": t.feature,
        "threshold": t.threshold,
        "missing_left": np.asarray(t.missing_go_to_left, dtype=bool),
        "left": np.where(leaf, 0, t.children_left),
        "right": np.where(leaf, 0, t.children_right),
        "value": t.value[:, 0, :],
        "depth": t.max_depth,
    }


def _hgb_tree(predictor: Any) -> dict[str, np.ndarray]:
    nodes = predictor.nodes
    leaf = nodes["is_leaf"].astype(bool)
    if nodes["is_categorical"][~leaf].any():
        raise Unsupported("HistGradientBoosting with categorical splits")
    return {
        "leaf": leaf,
        "feature": nodes["feature_idx"],
        "threshold": nodes["num_threshold"],
        "missing_left": nodes["missing_go_to_left"],
        "left": np.where(leaf, 0, nodes["left"]),
        "right": np.where(leaf, 0, nodes["right"]),
        "value": nodes["value"].reshape(-1, 1),
        "depth": int(nodes["depth"].max()),
    }


class TreeHead:
    """A compiled tree ensemble (see the module docstring for the exact arithmetic)."""

    allows_nan = False

    def __init__(self, est: Any) -> None:
        kind = type(est)
        self.kind = kind
        self.is_classifier = kind in (
            RandomForestClassifier,
            ExtraTreesClassifier,
            GradientBoostingClassifier,
            HistGradientBoostingClassifier,
        )
        classes = np.asarray(est.classes_) if self.is_classifier else None
        self.classes_ = classes
        if kind in _FORESTS:
            if getattr(est, "n_outputs_", 1) != 1:
                raise Unsupported(f"multi-output {kind.__name__}")
            self.k = len(classes) if classes is not None else 1
            trees = [_sk_tree(e) for e in est.estimators_]
            for t in trees:
                t["value"] = t["value"][:, : self.k]
            self.table = NodeTable(trees, self.k, float32=True)
        elif kind in _GB:
            init = est.init_
            if not (isinstance(init, str) and init == "zero") and type(init) not in (
                DummyRegressor,
                DummyClassifier,
            ):
                raise Unsupported(f"GradientBoosting with init={type(init).__name__}")
            stages, self.k = est.estimators_.shape
            self.table = NodeTable([_sk_tree(e) for e in est.estimators_.ravel()], 1, float32=True)
            # the init estimator's raw prediction does not depend on X
            probe = np.zeros((1, est.n_features_in_), dtype=np.float32)
            self.init = np.asarray(est._raw_predict_init(probe), dtype=np.float64)[0]
            self.learning_rate = float(est.learning_rate)
            self.loss = est._loss
        elif kind in _HGB:
            if getattr(est, "_preprocessor", None) is not None or est.is_categorical_ is not None:
                raise Unsupported("HistGradientBoosting with categorical features")
            self.k = est.n_trees_per_iteration_
            self.table = NodeTable(
                [_hgb_tree(p) for it in est._predictors for p in it], 1, float32=False
            )
            self.baseline = np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
            self.loss = est._loss
        else:  # pragma: no cover - compile_trees checks the kind
            raise Unsupported(kind.__name__)

    def _leaf_values(self, X: np.ndarray) -> np.ndarray:
        """Leaf values as ``(n_trees, n_rows, k)``: trees on the leading axis."""
        node = self.table.leaves(X)
        n = X.shape[0]
        values = self.table.value[node]  # (n * n_trees, width)
        width = values.shape[1]
        # contiguous, so that reductions over the leading axis add tree after tree
        return np.ascontiguousarray(values.reshape(n, self.table.n_trees, width).transpose(1, 0, 2))

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Forests: mean of the trees; boosting: raw predictions ``(n, k)``."""
        n = X.shape[0]
        if self.kind in _FORESTS:
            out = np.add.reduce(self._leaf_values(X), axis=0)
            out /= self.table.n_trees
            return out
        if self.kind in _GB:
            values = self._leaf_values(X).reshape(-1, self.k, n).transpose(0, 2, 1)
            steps = np.empty((values.shape[0] + 1, n, self.k))  # C-contiguous
            steps[0] = self.init
            np.multiply(self.learning_rate, values, out=steps[1:])
            return np.add.reduce(steps, axis=0)
        values = self._leaf_values(X).reshape(-1, self.k, n).transpose(0, 2, 1)
        steps = np.empty((values.shape[0] + 1, n, self.k))
        steps[0] = self.baseline
        steps[1:] = values
        return np.add.reduce(steps, axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.raw(X)
        kind = self.kind
        if kind in _FORESTS:
            if self.is_classifier:
                assert self.classes_ is not None  # set for every classifier
                return self.classes_.take(np.argmax(raw, axis=1), axis=0)
            return raw[:, 0]
        if kind is GradientBoostingRegressor:
            return raw.ravel()
        if kind is HistGradientBoostingRegressor:
            return self.loss.link.inverse(raw.ravel())
        if raw.shape[1] == 1:
            if kind is GradientBoostingClassifier:
                encoded = (raw.ravel() >= 0).astype(int)
            else:
                encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        # only the boosting classifiers are left: their classes_ is set
        assert self.classes_ is not None
        return self.classes_[encoded]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if not self.is_classifier:
            raise AttributeError("predict_proba of a regressor")
        raw = self.raw(X)
        if self.kind in _FORESTS:
            return raw
        if self.kind is GradientBoostingClassifier and raw.shape[1] == 1:
            raw = raw.ravel()
        return self.loss.predict_proba(raw)

    def splits(self) -> list[tuple[int, float]]:
        """(feature, threshold) of every split node."""
        t = self.table
        inner = ~t.leaf
        return list(zip(t.feature[inner].tolist(), t.threshold[inner].tolist(), strict=True))

    def nbytes(self) -> int:
        return self.table.nbytes()


def compile_trees(est: Any) -> TreeHead | None:
    """A :class:`TreeHead` for a supported ensemble type, None for other estimators."""
    if type(est) in _FORESTS + _GB + _HGB:
        return TreeHead(est)
    return None
