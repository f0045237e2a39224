"""Check a compiled program against the model's own ``predict``/``predict_proba``.

The rows checked are the reference rows plus edge rows made from them:

* text columns as plain ``object`` (the gateway's form) when they came as category/str;
* per column: NaN (where an imputer or the trees take it), an unseen category (text
  columns), values scaled by a few percent and values shuffled between rows;
* for tree heads: inputs placed on split thresholds (and one float64 step either side),
  where a double-precision evaluator that skipped scikit-learn's float32 cast would part
  from it.

A variant the model itself refuses (it raises) is skipped; rows the compiled path hands
back to the model (:class:`~.program.Delegate`) are counted, not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dethrone_router.gateway.compile.preprocess import invertible_columns
from dethrone_router.gateway.compile.program import TEXT, Delegate, Program

#: accepted relative difference of regression values and probabilities
REL_TOL = 1e-9
#: values that cancel to almost 0 are compared relative to this fraction of the largest
#: value of the check instead of their own magnitude
FLOOR = 1e-6
UNSEEN = "__dethrone_unseen__"
_EDGE_BASE_ROWS = 20
_THRESHOLD_ROWS = 300


@dataclass(frozen=True)
class Verdict:
    """Whether the compiled program agrees with the model, and on how many rows."""

    ok: bool
    reason: str
    rows: int  # rows scored by both and compared
    delegated: int  # rows the compiled path handed to the model


def _with(frame: pd.DataFrame, column: str, values: Any) -> pd.DataFrame:
    out = frame.copy()
    if isinstance(out[column].dtype, (pd.CategoricalDtype, pd.StringDtype)):
        out[column] = out[column].to_numpy(dtype=object)
    out[column] = values
    return out


def edge_rows(
    program: Program, reference: pd.DataFrame, seed: int = 0
) -> list[tuple[str, pd.DataFrame]]:
    """Named variants of ``reference`` to verify on (the reference itself first)."""
    rng = np.random.default_rng(seed)
    variants: list[tuple[str, pd.DataFrame]] = [("reference", reference)]
    text = [c for c, k in program.inputs.items() if k == TEXT and c in reference.columns]
    if any(reference[c].dtype != object for c in text):
        plain = reference.copy()
        for c in text:
            plain[c] = plain[c].to_numpy(dtype=object)
        variants.append(("text as object", plain))
    base = reference.head(_EDGE_BASE_ROWS).reset_index(drop=True)
    n = len(base)
    for col, kind in program.inputs.items():
        if col not in base.columns:
            continue
        variants.append(
            (
                f"NaN in {col}",
                _with(base, col, np.full(n, np.nan, dtype=object if kind == TEXT else float)),
            )
        )
        if kind == TEXT:
            variants.append((f"unseen {col}", _with(base, col, np.full(n, UNSEEN, dtype=object))))
        else:
            values = base[col].to_numpy(dtype=float)
            variants.append(
                (f"scaled {col}", _with(base, col, values * rng.uniform(0.95, 1.05, n)))
            )
        shuffled = reference[col].sample(n=n, replace=True, random_state=seed).to_numpy()
        variants.append((f"shuffled {col}", _with(base, col, shuffled)))
    splits = getattr(program.head, "splits", None)
    columns = invertible_columns(program)
    if splits is not None and columns:
        points = [(f, t) for f, t in splits() if f in columns]
        if points:
            pick = rng.choice(len(points), size=min(_THRESHOLD_ROWS, len(points)), replace=False)
            rows = base.iloc[np.arange(len(pick) * 3) % n].reset_index(drop=True)
            rows = rows.astype({c: float for c, _ in columns.values()})
            for i, p in enumerate(pick):
                feature, threshold = points[p]
                col, inverse = columns[feature]
                x = inverse(threshold)
                for j, v in enumerate((x, np.nextafter(x, -np.inf), np.nextafter(x, np.inf))):
                    rows.loc[3 * i + j, col] = v
            variants.append(("on split thresholds", rows))
    return variants


def _max_rel(expected: np.ndarray, got: np.ndarray, scale: float) -> np.ndarray:
    """Per-row largest relative difference."""
    expected = np.asarray(expected, dtype=np.float64).reshape(len(expected), -1)
    got = np.asarray(got, dtype=np.float64).reshape(len(got), -1)
    denom = np.maximum(np.maximum(np.abs(expected), np.abs(got)), FLOOR * scale)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(expected - got) / denom
    rel[(expected == got) | (np.isnan(expected) & np.isnan(got))] = 0.0
    rel[np.isnan(rel)] = np.inf
    return rel.max(axis=1)


def _batch(name: str, frame: pd.DataFrame) -> tuple[str, pd.DataFrame, np.ndarray, list]:
    return name, frame, np.full(len(frame), name, dtype=object), []


def _batches(variants: list[tuple[str, pd.DataFrame]]) -> list:
    """The variants as few model calls: the first two alone (their dtypes are the point),
    the edge rows together (HistGradientBoosting's predict costs ~0.1 s a call on a busy
    machine); each row keeps its variant's name, and a joint frame keeps its parts, to be
    scored one by one if the model refuses the whole."""
    out = [_batch(name, frame) for name, frame in variants[:2]]
    rest = variants[2:]
    if rest:
        labels = np.concatenate([np.full(len(f), n, dtype=object) for n, f in rest])
        joint = pd.concat([f for _, f in rest], ignore_index=True)
        out.append(("edge rows", joint, labels, [_batch(n, f) for n, f in rest]))
    return out


def verify(model: Any, program: Program, reference: pd.DataFrame) -> Verdict:
    """Compare ``program`` with ``model`` on ``reference`` and its edge rows."""
    classifier = program.head.is_classifier
    classes = program.head.classes_  # None exactly for a regressor head
    if classifier and (classes is None or not np.array_equal(classes, np.asarray(model.classes_))):
        return Verdict(False, "classes differ from the model's classes_", 0, 0)
    rows = delegated = 0
    worst = 0.0
    bad_rows = 0
    bad_classes = 0
    where: list[str] = []
    work = _batches(edge_rows(program, reference))
    while work:
        name, frame, labels, parts = work.pop(0)
        try:
            expected = model.predict(frame)
            expected_proba = model.predict_proba(frame) if classifier else None
        except Exception:  # noqa: BLE001 - the model refuses these rows: try the parts alone
            work[:0] = parts
            continue
        try:
            X = program.features(frame)
        except Delegate:
            delegated += len(frame)
            continue
        got = program.head.predict(X)
        rows += len(frame)
        if np.shape(got) != np.shape(expected):
            shapes = f"{np.shape(got)} != {np.shape(expected)}"
            return Verdict(False, f"output shape {shapes} ({name})", rows, delegated)
        if classifier:
            wrong = np.asarray(got) != np.asarray(expected)
            assert expected_proba is not None  # computed above for a classifier
            values, reference_values = program.head.predict_proba(X), expected_proba
        else:
            wrong = np.zeros(len(frame), dtype=bool)
            values, reference_values = got, expected
        scale = float(np.max(np.abs(reference_values))) if np.size(reference_values) else 1.0
        rel = _max_rel(reference_values, values, scale)
        off = rel > REL_TOL
        for label in dict.fromkeys(labels[off | wrong].tolist()):
            where.append(label)
        bad_rows += int(off.sum())
        bad_classes += int(wrong.sum())
        worst = max(worst, float(rel.max(initial=0.0)))
    if rows == 0:
        return Verdict(False, "no reference row could be scored by the compiled path", 0, delegated)
    places = f" ({', '.join(where[:3])}{', ...' if len(where) > 3 else ''})"
    if bad_classes:
        return Verdict(
            False,
            f"predicted class differs on {bad_classes} of {rows} rows{places}",
            rows,
            delegated,
        )
    if bad_rows:
        return Verdict(
            False,
            f"max relative difference {worst:.1e} on {bad_rows} of {rows} rows{places}",
            rows,
            delegated,
        )
    return Verdict(
        True, f"verified on {rows} rows (max relative difference {worst:.1e})", rows, delegated
    )
