"""Where a drift check's current data comes from (``DRIFT_SOURCE``).

- ``router``: a ``/get_data`` slice (the seed's simulation of new data; the default).
- ``log``: what the champion actually served over the last ``DRIFT_WINDOW``, read from the
  prediction log: the logged features, the champion's outputs as the column
  :data:`PREDICTION` and, where a label came back, the target and the row's loss as
  :data:`LOSS` (the same proper loss a live look uses).
- a path or URI of a Parquet or CSV file (``s3://`` through the stager's client).

Besides the features, the log source lets the check compare the champion's outputs with
its outputs on its reference data (prediction drift) and its live loss with its offline,
out-of-fold loss (live performance): the training step stores both in the profile under
the same two column names.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import Text, and_, cast, select

from dethrone.experiments.live_loss import live_losses, loss_for
from dethrone.store.durations import parse_duration
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import feedback, predictions

__all__ = [
    "LOSS",
    "PREDICTION",
    "SOURCES",
    "TooFewRows",
    "log_frame",
    "read_table",
    "source_kind",
]

#: pseudo-columns of a profile and a current frame: the model's output and its loss
PREDICTION, LOSS = "__prediction__", "__loss__"
SOURCES = ("router", "log")


class TooFewRows(ValueError):
    """The window holds too few served rows for a drift check (``DRIFT_MIN_ROWS``)."""


def source_kind(source: str) -> str:
    """``router``, ``log`` or ``file`` for a ``DRIFT_SOURCE`` value.

    >>> source_kind("log"), source_kind("s3://bucket/served/2026-12-04.parquet")
    ('log', 'file')
    """
    text = source.strip()
    if text in SOURCES:
        return text
    if not text:
        raise ValueError("DRIFT_SOURCE must be router, log or a Parquet/CSV path or URI")
    return "file"


def read_table(source: str, stager: Any = None) -> pd.DataFrame:
    """A Parquet or CSV file (local path, ``file://`` or ``s3://`` through ``stager``)."""
    if source.startswith("s3://"):
        if stager is None:
            raise ValueError(f"DRIFT_SOURCE {source!r}: an s3:// URI needs the S3 stager")
        return stager.get(source)
    path = Path(source.removeprefix("file://"))
    if not path.exists():
        raise ValueError(f"DRIFT_SOURCE {source!r}: no such file")
    if path.suffix.lower() in (".csv", ".gz", ".bz2", ".zip"):
        return pd.read_csv(path)
    return pd.read_parquet(path)


def log_frame(
    engine: Any,
    *,
    model_version: str,
    window: str,
    target: str,
    loss: str = "auto",
    now: float | None = None,
) -> pd.DataFrame:
    """The served rows of ``model_version`` in the last ``window``, one row per served row.

    Columns: the logged features, :data:`PREDICTION` (a number, or the most probable
    class), ``target`` (the label, NaN until it arrives) and :data:`LOSS` (NaN until
    labelled). Rows logged without features (``SERVING_LOG_FEATURES``) are left out.
    """
    since = (time.time() if now is None else now) - parse_duration(window, name="DRIFT_WINDOW")
    p, f = predictions, feedback
    query = (
        select(cast(p.c.features, Text), cast(p.c.prediction, Text), cast(f.c.label, Text))
        .select_from(p.outerjoin(f, and_(f.c.request_id == p.c.request_id, f.c.row == p.c.row)))
        .where(p.c.served.is_(True), p.c.model_version == str(model_version), p.c.ts >= since)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        rows = [r for r in conn.execute(query).cursor.fetchall() if r[0] not in (None, "null")]
    if not rows:
        return pd.DataFrame(columns=[PREDICTION, target, LOSS])
    feats, preds, labels = zip(*rows, strict=True)
    frame = pd.DataFrame.from_records([orjson.loads(x) for x in feats])
    decoded = [None if x in (None, "null") else orjson.loads(x) for x in preds]
    frame[PREDICTION] = _outputs(decoded)
    frame[target] = [None if y is None else orjson.loads(y) for y in labels]
    used = loss_for(loss, decoded[:1000])
    values = np.full(len(frame), np.nan)
    known = np.array([y is not None for y in labels])
    if known.any():
        values[known] = live_losses(
            [decoded[i] for i in np.flatnonzero(known)],
            [labels[i] for i in np.flatnonzero(known)],
            used,
        )
    frame[LOSS] = values
    frame.attrs["loss"] = used
    return frame


def _outputs(values: list[Any]) -> pd.Series:
    """The model's output per row: a number, or the most probable class as text."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values if v is not None):
        return pd.Series([np.nan if v is None else float(v) for v in values], dtype=float)
    out = []
    for v in values:
        if isinstance(v, dict) and v:
            v = max(v, key=v.__getitem__)
        out.append(None if v is None else str(v))
    return pd.Series(out, dtype=object)
