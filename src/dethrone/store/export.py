"""Reading the log back: predictions joined to their labels, exported, summarised, pruned.

Rows are read in chunks by ascending ``id`` (keyset pagination), so an export of any size
holds one chunk in memory and a concurrent writer never makes a row appear twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from sqlalchemy import Engine, Text, and_, cast, delete, exists, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from dethrone.drift.spark import s3_filesystem
from dethrone.store.durations import parse_duration
from dethrone.store.engine import write_transaction
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import feedback as _fb
from dethrone.store.schema import look_scopes, look_tail, look_units
from dethrone.store.schema import predictions as _pred

_TS = pa.timestamp("us", tz="UTC")
#: columns of :func:`joined_predictions` and of the Parquet export, with their types
SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("request_id", pa.string()),
        ("row", pa.int64()),
        ("arm", pa.string()),
        ("served", pa.bool_()),
        ("unit", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("experiment_id", pa.string()),
        ("champion_version", pa.string()),
        ("challenger_version", pa.string()),
        ("salt", pa.string()),
        ("ts", _TS),
        ("prediction", pa.float64()),
        ("predicted_class", pa.string()),
        ("prediction_json", pa.string()),
        ("latency_ms", pa.float64()),
        ("features_json", pa.string()),
        ("label", pa.float64()),
        ("label_class", pa.string()),
        ("label_json", pa.string()),
        ("labelled_at", _TS),
        ("loss", pa.float64()),
    ]
)
#: the log's plain columns, read as they are (the JSON ones and the latency are read below)
_COLUMNS = [c for c in _pred.c if c.name not in ("prediction", "latency_ms", "features")]


def to_epoch(value: Any, *, now: float | None = None) -> float | None:
    """Seconds since the epoch from a number, a datetime, an ISO time, or a duration ago.

    >>> to_epoch("1970-01-02T00:00:00Z"), to_epoch("1d", now=100_000.0)
    (86400.0, 13600.0)
    """
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    if isinstance(value, datetime):
        return (
            pd.Timestamp(value).tz_localize("UTC").timestamp()
            if value.tzinfo is None
            else value.timestamp()
        )
    try:
        return (time.time() if now is None else now) - parse_duration(value)
    except ValueError:
        pass
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        raise ValueError(f"not a time (ISO) nor a duration (7d, 12h): {value!r}") from None
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).timestamp()


class _json_text(FunctionElement):
    """A JSON column as text. SQLite gives a column declared JSON numeric affinity, so a
    number is stored as REAL and CAST(... AS TEXT) keeps only 15 digits: print 17, which
    read back as the very double that was logged."""

    type = Text()
    inherit_cache = True


@compiles(_json_text)
def _json_text_default(element, compiler, **kw):
    return compiler.process(cast(list(element.clauses)[0], Text), **kw)


@compiles(_json_text, "sqlite")
def _json_text_sqlite(element, compiler, **kw):
    col = compiler.process(list(element.clauses)[0], **kw)
    return (
        f"CASE typeof({col}) WHEN 'real' THEN printf('%!.17g', {col}) ELSE CAST({col} AS TEXT) END"
    )


def _query(
    experiment: str | None, since: float | None, until: float | None, after: int, limit: int
):
    cond = [_pred.c.id > after]
    if experiment is not None:
        cond.append(_pred.c.experiment_id == experiment)
    if since is not None:
        cond.append(_pred.c.ts >= since)
    if until is not None:
        cond.append(_pred.c.ts < until)
    joined = _pred.outerjoin(
        _fb, and_(_fb.c.request_id == _pred.c.request_id, _fb.c.row == _pred.c.row)
    )
    return (
        select(
            *_COLUMNS,
            _json_text(_pred.c.prediction).label("prediction_json"),
            _pred.c.latency_ms,
            cast(_pred.c.features, Text).label("features_json"),
            _json_text(_fb.c.label).label("label_json"),
            _fb.c.received_at.label("labelled_at"),
        )
        .select_from(joined)
        .where(*cond)
        .order_by(_pred.c.id)
        .limit(limit)
    )


def iter_joined(
    engine: Engine,
    *,
    experiment: str | None = None,
    since: Any = None,
    until: Any = None,
    chunk_rows: int = 50_000,
) -> Iterator[pa.Table]:
    """Joined rows as Arrow tables of :data:`SCHEMA`, at most ``chunk_rows`` each, by ``id``.

    See :func:`joined_predictions` for the columns.
    """
    since, until, after = to_epoch(since), to_epoch(until), 0
    while True:
        with unavailable_as_typed(), engine.connect() as conn:
            result = conn.execute(_query(experiment, since, until, after, chunk_rows))
            keys, rows = list(result.keys()), result.fetchall()
        # Column-wise: pandas probing each Row object for attributes costs more than the query.
        frame = pd.DataFrame(
            dict(zip(keys, zip(*rows, strict=True), strict=True)) if rows else {}, columns=keys
        )
        if frame.empty:
            return
        after = int(frame["id"].iloc[-1])
        yield _derive(frame)
        if len(frame) < chunk_rows:
            return


def _derive(frame: pd.DataFrame) -> pa.Table:
    pred = [_decode(text) for text in frame["prediction_json"]]
    label = [_decode(text) for text in frame["label_json"]]
    out = frame.copy()
    # A class label against a numeric prediction (a classifier answering 0/1) compares the
    # number's text; class against class compares the most probable class.
    pred_cls, label_cls = _cls(pred), _cls(label)
    out["prediction"], out["label"] = _number(pred), _number(label)
    out["predicted_class"] = pred_cls.where(out["prediction"].isna(), None)
    out["label_class"] = label_cls.where(out["label"].isna(), None)
    numeric = out["prediction"].notna() & out["label"].notna()
    zero_one = (pred_cls != label_cls).astype(float)
    out["loss"] = np.where(
        numeric,
        (out["prediction"] - out["label"]).abs(),
        np.where(out["label_json"].notna() & ~numeric, zero_one, np.nan),
    )
    out["latency_ms"] = out["latency_ms"].astype(float)
    out["served"] = out["served"].astype(bool)
    times = {col: _timestamps(out.pop(col)) for col in ("ts", "labelled_at")}
    plain = pa.schema([f for f in SCHEMA if f.name not in times])
    table = pa.Table.from_pandas(out[plain.names], schema=plain, preserve_index=False)
    for col, array in times.items():
        table = table.append_column(SCHEMA.field(col), array)
    return table.select(SCHEMA.names)


def _timestamps(seconds: pd.Series) -> pa.Array:
    # Epoch seconds to microseconds in Arrow directly (pandas' own tz path is deprecated).
    values = seconds.astype(float).to_numpy()
    micros = np.round(np.nan_to_num(values) * 1e6).astype(np.int64)
    return pa.array(micros, type=pa.int64(), mask=np.isnan(values)).cast(_TS)


def _decode(text: Any) -> Any:
    return orjson.loads(text) if isinstance(text, str) else None


def _number(values: list[Any]) -> pd.Series:
    return pd.Series(
        [
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else np.nan
            for v in values
        ],
        dtype=float,
    )


def _cls(values: list[Any]) -> pd.Series:
    """The class of each value; a number as its text (``1.0`` → ``"1"``)."""

    def one(v: Any) -> str | None:
        if v is None:
            return None
        if isinstance(v, str):
            return v
        if isinstance(v, dict) and v:  # class probabilities: the most probable class
            return str(max(v, key=v.__getitem__))
        if isinstance(v, list) and v:  # unnamed probabilities: the index of the largest
            return str(int(np.argmax(v)))
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, int | float):
            return str(int(v)) if float(v).is_integer() else str(v)
        return None

    return pd.Series([one(v) for v in values], dtype=object)


def joined_predictions(
    engine: Engine, *, experiment: str | None = None, since: Any = None, until: Any = None
) -> pd.DataFrame:
    """Every logged prediction with its label (if any), as one DataFrame.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        A migrated database.
    experiment : str, optional
        Only rows of this experiment id.
    since, until : float, datetime, str, optional
        Only rows logged in ``[since, until)``; epoch seconds, a datetime, an ISO time or a
        duration before now (``"7d"``).

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`SCHEMA`: the logged columns, the prediction and the label as
        a number (``prediction``, ``label``) or a class (``predicted_class``, ``label_class``,
        the most probable class for probabilities), their JSON, ``labelled_at`` and ``loss``
        (absolute error for numbers, 0/1 for classes, NaN without a label).
    """
    tables = list(iter_joined(engine, experiment=experiment, since=since, until=until))
    return pa.concat_tables(tables or [SCHEMA.empty_table()]).to_pandas()


@dataclass(frozen=True)
class ExportResult:
    """Where the export went and how many rows it holds."""

    path: str
    rows: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(
    engine: Engine,
    out: str | Path,
    *,
    experiment: str | None = None,
    since: Any = None,
    until: Any = None,
    chunk_rows: int = 50_000,
) -> ExportResult:
    """Write :func:`joined_predictions` to a Parquet file chunk by chunk (bounded memory).

    The file is written next to ``out`` and renamed when complete, so a reader never sees
    half an export.
    """
    began, out = time.perf_counter(), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial, rows = out.with_name(out.name + ".partial"), 0
    try:
        with pq.ParquetWriter(partial, SCHEMA) as writer:
            for table in iter_joined(
                engine, experiment=experiment, since=since, until=until, chunk_rows=chunk_rows
            ):
                writer.write_table(table)
                rows += table.num_rows
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(str(out), rows, round(time.perf_counter() - began, 3))


def export_by_day(
    engine: Engine,
    out: str | Path,
    *,
    experiment: str | None = None,
    since: Any = None,
    until: Any = None,
    features: bool = False,
    settings: Any = None,
    chunk_rows: int = 50_000,
) -> ExportResult:
    """Write :func:`joined_predictions` as Parquet partitioned by the UTC day of ``ts``:
    ``OUT/date=YYYY-MM-DD/part-N.parquet``, chunk by chunk (bounded memory).

    ``out`` is a folder or an ``s3://bucket/prefix`` on the S3 store of ``settings``.
    A day written again replaces that day's files (a day's export is idempotent; other
    days are kept). With ``features``, each logged feature is a column too (a number
    when the first chunk holds only numbers for it, else text), so that the folder is a
    drift source (``DRIFT_SOURCE``, ``dethrone drift --engine spark``); features named
    like a log column are refused.

    Raises
    ------
    ValueError
        On a feature named like a log column, or a text value in a numeric feature.
    """
    began, text = time.perf_counter(), str(out)
    if text.startswith("s3://"):
        fs, base = s3_filesystem(settings), text.removeprefix("s3://").rstrip("/")
    else:
        fs, base = None, str(Path(text.removeprefix("file://")))
    chunks = iter_joined(
        engine, experiment=experiment, since=since, until=until, chunk_rows=chunk_rows
    )
    first = next(chunks, None)
    if first is None:
        return ExportResult(text, 0, round(time.perf_counter() - began, 3))
    schema = _day_schema(first, features)
    rows = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        for table in _chain(first, chunks):
            rows[0] += table.num_rows
            yield from _with_day(table, schema).to_batches()

    ds.write_dataset(
        pa.RecordBatchReader.from_batches(schema, batches()),
        base,
        format="parquet",
        filesystem=fs,
        partitioning=ds.partitioning(pa.schema([("date", pa.string())]), flavor="hive"),
        basename_template="part-{i}.parquet",
        existing_data_behavior="delete_matching",
    )
    return ExportResult(text, rows[0], round(time.perf_counter() - began, 3))


def _chain(first: pa.Table, rest: Iterator[pa.Table]) -> Iterator[pa.Table]:
    yield first
    yield from rest


def _day_schema(first: pa.Table, features: bool) -> pa.Schema:
    """The export's schema, with the partition column ``date`` (and the features)."""
    fields = list(SCHEMA)
    if features:
        decoded = [_decode(t) or {} for t in first.column("features_json").to_pylist()]
        names: dict[str, bool] = {}  # name -> numeric
        for row in decoded:
            for k, v in row.items():
                number = v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                names[k] = names.get(k, True) and number
        clash = sorted(set(names) & set(SCHEMA.names + ["date"]))
        if clash:
            raise ValueError(f"features named like log columns cannot be exported: {clash}")
        fields += [pa.field(k, pa.float64() if num else pa.string()) for k, num in names.items()]
    return pa.schema([*fields, pa.field("date", pa.string())])


def _with_day(table: pa.Table, schema: pa.Schema) -> pa.Table:
    days = pc.strftime(table.column("ts"), format="%Y-%m-%d", locale="C")
    extra = [f for f in schema if f.name not in SCHEMA.names and f.name != "date"]
    if extra:
        decoded = [_decode(t) or {} for t in table.column("features_json").to_pylist()]
        for f in extra:
            values = [row.get(f.name) for row in decoded]
            if pa.types.is_floating(f.type):
                bad = [v for v in values if isinstance(v, str | bool | dict | list)]
                if bad:
                    raise ValueError(f"feature {f.name!r} is numeric but holds {bad[0]!r}")
            else:
                values = [None if v is None else str(v) for v in values]
            table = table.append_column(f, pa.array(values, type=f.type))
    return table.append_column("date", days).select(schema.names)


@dataclass(frozen=True)
class ArmStats:
    """Counts and live loss of one arm (shadow arms included)."""

    arm: str
    rows: int
    labelled: int
    mean_loss: float | None

    @property
    def coverage(self) -> float:
        """Share of the arm's rows that have a label."""
        return self.labelled / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage}


def stats(
    engine: Engine, *, experiment: str | None = None, since: Any = None, until: Any = None
) -> tuple[ArmStats, ...]:
    """Per-arm rows, labelled rows, label coverage and mean live loss, sorted by arm.

    The loss is the absolute error for numeric labels and the 0/1 loss for class labels
    (see :func:`joined_predictions`); ``mean_loss`` is None for an arm with no label yet.
    """
    total: dict[str, list[float]] = {}  # rows, labelled (ints), loss sum
    for table in iter_joined(engine, experiment=experiment, since=since, until=until):
        chunk = table.select(["id", "arm", "loss"]).to_pandas()
        grouped = chunk.groupby("arm").agg(
            rows=("id", "size"), labelled=("loss", "count"), loss=("loss", "sum")
        )
        for arm, rec in grouped.iterrows():
            acc = total.setdefault(str(arm), [0, 0, 0.0])
            acc[0] += int(rec["rows"])
            acc[1] += int(rec["labelled"])
            acc[2] += float(rec["loss"])
    return tuple(
        ArmStats(arm, int(n), int(k), loss / k if k else None)
        for arm, (n, k, loss) in sorted(total.items())
    )


@dataclass(frozen=True)
class PruneResult:
    """Rows deleted by :func:`prune`."""

    predictions: int
    feedback: int
    cutoff: float
    #: the kept sums of live-experiment looks no look has advanced since the cutoff
    look_scopes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prune(engine: Engine, *, older_than: str | float, now: float | None = None) -> PruneResult:
    """Delete predictions logged more than ``older_than`` ago (``"30d"`` or seconds), with
    their labels, and the kept sums of looks (``look_units``) not advanced since then (an
    ended experiment's), in one transaction.
    """
    cutoff = (time.time() if now is None else now) - parse_duration(older_than, name="older_than")
    old = exists().where(
        _pred.c.request_id == _fb.c.request_id, _pred.c.row == _fb.c.row, _pred.c.ts < cutoff
    )
    with unavailable_as_typed(), write_transaction(engine) as conn:
        n_feedback = conn.execute(delete(_fb).where(old)).rowcount
        n_pred = conn.execute(delete(_pred).where(_pred.c.ts < cutoff)).rowcount
        stale = select(look_scopes.c.id).where(look_scopes.c.updated_at < cutoff)
        conn.execute(delete(look_units).where(look_units.c.scope_id.in_(stale)))
        conn.execute(delete(look_tail).where(look_tail.c.scope_id.in_(stale)))
        n_scopes = conn.execute(delete(look_scopes).where(look_scopes.c.updated_at < cutoff))
    return PruneResult(n_pred, n_feedback, cutoff, n_scopes.rowcount or 0)
