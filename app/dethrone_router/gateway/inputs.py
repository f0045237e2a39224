"""Prediction payloads: MLflow's scoring formats in, a checked DataFrame out.

Accepted bodies (a JSON object with exactly one of):

* ``dataframe_split``: ``{"columns": [...], "data": [[...], ...]}`` (``index`` ignored)
* ``dataframe_records`` / ``rows``: ``[{"col": value, ...}, ...]``
* ``instances`` / ``inputs``: a list of records, a list of value lists in the signature's
  column order, or an object of ``column -> list of values``

plus optional ``probabilities`` (bool) and ``params`` (accepted, ignored, as MLflow does
for models without a params schema). Every rule names its field; nothing is half-parsed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from flask import request

from dethrone_router.body import read_json
from dethrone_router.errors import ApiError
from dethrone_router.gateway.models import Feature
from dethrone_router.validation import ValidationError

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs", "rows")
OPTIONS = ("probabilities", "params")
_DTYPES = {"number": "float64", "integer": "int64", "boolean": "bool", "string": "object"}


def read_body() -> dict[str, Any]:
    """The request's JSON object (415 for another content type, 400 for bad JSON)."""
    body = read_json(expect="a JSON object")
    if not isinstance(body, dict):
        raise ValidationError(
            None, "type", f"body must be a JSON object with one of {', '.join(FORMATS)}"
        )
    return body


def payload_rows(
    body: dict[str, Any], *, max_rows: int, order: Sequence[str] | None
) -> tuple[str, list[dict[str, Any]]]:
    """``(format key, rows as dicts)`` of a prediction body.

    ``order`` names the columns of positional rows (the model's signature).
    """
    unknown = sorted(set(body) - set(FORMATS) - set(OPTIONS))
    if unknown:
        raise ValidationError(
            unknown[0],
            "unknown_key",
            f"unknown key {unknown[0]!r}; "
            f"give one of {', '.join(FORMATS)} (+ {', '.join(OPTIONS)})",
        )
    given = [k for k in FORMATS if k in body]
    if len(given) != 1:
        raise ValidationError(
            given[1] if given else None, "format", f"give exactly one of {', '.join(FORMATS)}"
        )
    key, value = given[0], body[given[0]]
    if key == "dataframe_split":
        rows = _split_rows(value)
    elif isinstance(value, dict) and key in ("instances", "inputs"):
        rows = _columnar_rows(key, value)
    elif isinstance(value, list):
        rows = _list_rows(key, value, order)
    else:
        raise ValidationError(key, "type", f"{key} must be a list of rows")
    if not rows:
        raise ValidationError(key, "empty", f"{key} has no rows; send at least one")
    if len(rows) > max_rows:
        raise ApiError(
            413,
            "too_many_rows",
            f"{key} has {len(rows)} rows; at most {max_rows} per request (SERVING_MAX_ROWS)",
            key,
        )
    return key, rows


def _split_rows(value: Any) -> list[dict[str, Any]]:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("columns"), list)
        or not isinstance(value.get("data"), list)
    ):
        raise ValidationError(
            "dataframe_split",
            "type",
            "dataframe_split must be an object with lists columns and data",
        )
    columns = value["columns"]
    if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise ValidationError("dataframe_split.columns", "type", "columns must be distinct strings")
    rows = []
    for i, row in enumerate(value["data"]):
        if not isinstance(row, list) or len(row) != len(columns):
            raise ValidationError(
                f"dataframe_split.data[{i}]",
                "shape",
                f"each data row must be a list of {len(columns)} values",
            )
        rows.append(dict(zip(columns, row, strict=True)))
    return rows


def _columnar_rows(key: str, value: dict[str, Any]) -> list[dict[str, Any]]:
    lengths = {c: len(v) if isinstance(v, list) else -1 for c, v in value.items()}
    bad = [c for c, n in lengths.items() if n < 0]
    if bad:
        raise ValidationError(f"{key}.{bad[0]}", "type", f"{key}.{bad[0]} must be a list")
    if len(set(lengths.values())) > 1:
        raise ValidationError(key, "shape", f"columns of {key} differ in length: {lengths}")
    n = next(iter(lengths.values()), 0)
    return [{c: v[i] for c, v in value.items()} for i in range(n)]


def _list_rows(key: str, value: list, order: Sequence[str] | None) -> list[dict[str, Any]]:
    if value and all(isinstance(r, dict) for r in value):
        return value
    if value and all(isinstance(r, list) for r in value) and order is not None:
        for i, row in enumerate(value):
            if len(row) != len(order):
                raise ValidationError(
                    f"{key}[{i}]",
                    "shape",
                    f"{key}[{i}] has {len(row)} "
                    f"values; the model takes {len(order)}: {list(order)}",
                )
        return [dict(zip(order, row, strict=True)) for row in value]
    if not value:
        return []
    raise ValidationError(
        key,
        "type",
        f"{key} must be a list of objects (column -> value)"
        + (" or of value lists in signature order" if order else ""),
    )


def unit_of(rows: list[dict[str, Any]], column: str | None) -> str | None:
    """The unit key of a request: ``X-Dethrone-Unit``, else the configured column."""
    header = request.headers.get("X-Dethrone-Unit")
    if header is not None:
        if not 0 < len(header) <= 200:
            raise ValidationError(
                "X-Dethrone-Unit", "range", "X-Dethrone-Unit must have 1 to 200 characters"
            )
        return header
    if not column:
        return None
    values = {json.dumps(r.get(column), sort_keys=True) for r in rows}
    if len(values) != 1 or rows[0].get(column) is None:
        raise ValidationError(
            column,
            "unit",
            f"every row needs the same non-null {column!r} "
            f"(the unit column): a request goes to one arm",
        )
    value = rows[0][column]
    return value if isinstance(value, str) else json.dumps(value)


def to_frame(
    rows: list[dict[str, Any]], features: tuple[Feature, ...] | None, *, drop: str | None = None
) -> pd.DataFrame | dict[str, np.ndarray]:
    """The rows as the model takes them, every value checked against its feature.

    With a signature the result is ``column -> array`` in signature order: the batcher
    builds one DataFrame per model call from these (a DataFrame per request would cost
    about a millisecond each in pandas 3); without one it is a DataFrame.

    Raises
    ------
    ValidationError
        Naming the first missing, unknown, mistyped or uncoercible column.
    """
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValidationError(f"row {i}", "type", f"row {i} must be an object")
    if features is None:
        frame = pd.DataFrame.from_records(rows)
        return frame.drop(columns=[drop]) if drop in frame.columns else frame
    names = {f.name for f in features}
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    unknown = [c for c in seen if c not in names and c != drop]
    if unknown:
        raise ValidationError(
            unknown[0],
            "unknown_feature",
            f"unknown feature {unknown[0]!r};"
            f" the model takes {', '.join(f.name for f in features)}",
        )
    data = {}
    for feat in features:
        if feat.required:
            absent = next((i for i, r in enumerate(rows) if feat.name not in r), None)
            if absent is not None:
                raise ValidationError(
                    feat.name, "missing_feature", f"feature {feat.name!r} is missing (row {absent})"
                )
        data[feat.name] = _column(feat, [r.get(feat.name) for r in rows])
    return data


_FAST = {"number": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,)}


def _column(feat: Feature, values: list[Any]) -> np.ndarray:
    kind = feat.kind
    if kind == "any":
        return np.asarray(values, dtype=object)
    # Fast path: every value already has the right JSON type (exact type: bool is an int).
    fast = _FAST[kind]
    if all(type(v) in fast for v in values):
        try:
            # Strings stay object dtype, as the training frames had them.
            column = np.asarray(values, dtype=_DTYPES[kind])
            if kind != "number" or np.isfinite(column).all():
                return column
        except (OverflowError, ValueError):
            pass  # the slow path names the value
    values = [_coerce(feat.name, kind, v, i) for i, v in enumerate(values)]
    return np.asarray(values, dtype=_DTYPES[kind])


def _coerce(name: str, kind: str, v: Any, i: int) -> Any:
    where = f"feature {name!r} (row {i})"
    if kind == "string":
        if isinstance(v, str) or (v is None):
            return np.nan if v is None else v
        raise ValidationError(name, "type", f"{where} must be a string, got {_show(v)}")
    if kind == "boolean":
        if isinstance(v, bool):
            return v
        raise ValidationError(name, "type", f"{where} must be true or false, got {_show(v)}")
    if isinstance(v, (bool, list, dict)):
        raise ValidationError(name, "type", f"{where} must be a number, got {_show(v)}")
    if v is None:
        if kind == "integer":
            raise ValidationError(name, "type", f"{where} must be an integer, got null")
        return math.nan
    if isinstance(v, str):
        try:
            v = float(v.strip())
        except ValueError:
            raise ValidationError(
                name, "uncoercible", f"{where} cannot be read as a number: {_show(v)}"
            ) from None
    if kind == "integer":
        if isinstance(v, float) and not v.is_integer():
            raise ValidationError(
                name, "uncoercible", f"{where} must be an integer, got {_show(v)}"
            )
        if abs(v) >= 2**63:
            raise ValidationError(name, "range", f"{where} does not fit in 64 bits")
        return int(v)
    try:
        v = float(v)
    except OverflowError:
        raise ValidationError(name, "range", f"{where} is too large for a float") from None
    if math.isinf(v):
        raise ValidationError(name, "range", f"{where} must be finite, got {v}")
    return v


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
