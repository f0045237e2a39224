"""A look's rows reduced where they live: one ``GROUP BY`` in the database, then the
requests with a latency streamed in served order, in bounded chunks.

:func:`reduce_in_database` builds the same :class:`~dethrone.experiments.look_table.UnitTable`
as :func:`~dethrone.experiments.look_table.reduce_frame` does from the rows in memory, so
:func:`~dethrone.experiments.rules.decide` gives the same outcome and interval: the
process holds one row per (unit, arm) and 13 bytes per request with a latency, instead of
every row with its prediction and label (10^7 rows: about 0.2 GB instead of several).

The losses computed in SQL are those of numbers (``absolute_error``, ``squared_error``):
the database parses the JSON number's text as Python's ``float`` does (both correctly
rounded), and a difference, its absolute value and square are exact IEEE operations, so
every row's loss is the same double. Class probabilities (log loss, Brier, 0/1) and shadow
mode (losses paired by request) are read in memory by the caller instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import text

from dethrone.experiments.look_table import GROUP_COLUMNS, LookPlan, UnitTable
from dethrone.store.errors import unavailable_as_typed

__all__ = ["SQL_DIALECTS", "SQL_LOSSES", "KeyCollision", "reduce_in_database", "supports"]


class KeyCollision(LookupError):
    """Two units share a 64-bit key hash (about once in 10^7 looks at 10^6 units): the
    caller reads the rows instead."""


#: a JSON value as a double when it is a number, else NULL (a string, a class, null)
_NUMBER = {
    "postgresql": (
        "CASE WHEN json_typeof({x}) = 'number' THEN CAST(CAST({x} AS TEXT) AS DOUBLE PRECISION) END"
    ),
    "sqlite": "CASE WHEN json_type({x}) IN ('integer', 'real') THEN CAST({x} AS REAL) END",
}
#: glibc, for malloc_trim (None elsewhere: musl, macOS)
_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if ctypes.util.find_library("c") else None
if _LIBC is not None and not hasattr(_LIBC, "malloc_trim"):
    _LIBC = None
#: a unit's key as it leaves the database: PostgreSQL's 64-bit hash of it (an integer to
#: parse and hash in the process, not a string: 10^6 units, 0.2 GB less), checked for
#: collisions (:class:`KeyCollision`); SQLite's the text itself
_KEY = {"postgresql": "hashtextextended(k, 0)", "sqlite": "k"}
#: keeps the rows' subquery a plan node of its own: else PostgreSQL inlines the loss (two
#: JSON parses) into each of the four aggregates that read it (1e6 rows: 3.7 s, not 4.5 s)
_ONCE = {"postgresql": "OFFSET 0", "sqlite": ""}
#: per-row loss of ``yhat`` against ``y``, as :func:`~dethrone.experiments.live_loss.live_losses`
_LOSS = {"absolute_error": "ABS(yhat - y)", "squared_error": "(yhat - y) * (yhat - y)"}
SQL_LOSSES = tuple(_LOSS)
SQL_DIALECTS = tuple(_NUMBER)
#: the columns of the ``GROUP BY``: the table's, and how many rows have a latency
_FOUND = ("k", "b", *GROUP_COLUMNS[2:], "latencies", "last")
#: requests with a latency fetched per round trip: ~1 MB of Python objects at a time
CHUNK = 50_000
#: PostgreSQL's memory for the look's hash and sort (in the server, for this transaction
#: only; the default 4 MB spills 10^7 rows to disk)
WORK_MEM = "256MB"
#: bytes of COPY output parsed at a time (PostgreSQL)
COPY_BYTES = 2 << 20


def supports(engine: Any, plan: LookPlan) -> bool:
    """Whether the database can reduce this look (else read the rows into memory)."""
    return (
        engine.dialect.name in _NUMBER and not plan.shadow and str(plan.thresholds["loss"]) in _LOSS
    )


def _rows_sql(dialect: str, *, labels: bool = True) -> str:
    """The look's rows (rule 1) with their unit key, arm, error and numeric values; with
    their labels (a join) or not."""
    number = _NUMBER[dialect]
    join = 'LEFT JOIN feedback f ON f.request_id = p.request_id AND f."row" = p."row"'
    label, labelled_at = (
        (number.format(x="f.label"), "f.received_at") if labels else ("NULL", "NULL")
    )
    return f"""
SELECT CASE WHEN p.unit IS NOT NULL AND p.unit <> '' AND p.unit <> 'None'
            THEN 'u:' || p.unit ELSE 'r:' || p.request_id END AS k,
       CASE WHEN p.arm = 'champion' THEN 0 ELSE 1 END AS b,
       p.id, p.ts, p.latency_ms,
       CASE WHEN p.prediction IS NULL OR CAST(p.prediction AS TEXT) = 'null'
            THEN 1 ELSE 0 END AS err,
       {labelled_at} AS labelled_at,
       {number.format(x="p.prediction")} AS yhat,
       {label} AS y
FROM predictions p
{join if labels else ""}
WHERE p.salt = :salt AND p.ts >= :since
  AND ((p.arm = 'champion' AND p.model_version = :version_a)
       OR (p.arm IN (:arm_b1, :arm_b2) AND p.model_version = :version_b))
"""


def _groups_sql(dialect: str, loss: str) -> str:
    """:data:`~dethrone.experiments.look_table.GROUP_COLUMNS` per (unit key, arm), and the
    requests with a latency; a row is labelled as in ``select_rows`` (rule 3)."""
    return f"""
WITH r AS ({_rows_sql(dialect)}),
s AS (
  SELECT k, b, id, ts, err, latency_ms,
         CASE WHEN err = 0 AND ts <= :until THEN 1 ELSE 0 END AS elig,
         CASE WHEN err = 0 AND ts <= :until AND labelled_at - ts <= :window
              THEN {_LOSS[loss]} END AS loss
  FROM r {_ONCE[dialect]}
)
SELECT {_KEY[dialect]} AS k, b, COUNT(*) AS rows, SUM(err) AS errors, MIN(ts) AS t, MIN(id) AS tie,
       SUM(elig) AS eligible,
       MIN(CASE WHEN elig = 1 THEN ts END) AS t_eligible,
       MIN(CASE WHEN elig = 1 THEN id END) AS tie_eligible,
       COUNT(loss) AS labelled,
       MIN(CASE WHEN loss IS NOT NULL THEN ts END) AS t_labelled,
       MIN(CASE WHEN loss IS NOT NULL THEN id END) AS tie_labelled,
       COALESCE(SUM(loss), 0) AS loss_sum,
       COUNT(latency_ms) AS latencies, MAX(id) AS last
FROM s GROUP BY k, b
"""


def _params(plan: LookPlan) -> dict[str, Any]:
    arms = plan.arms_b
    return {
        "salt": plan.salt,
        "since": plan.since,
        "version_a": str(plan.version_a),
        "version_b": str(plan.version_b),
        "arm_b1": arms[0],
        "arm_b2": arms[-1],
        "until": plan.eligible_until,
        "window": plan.label_window,
    }


def reduce_in_database(engine: Any, plan: LookPlan) -> UnitTable:
    """The look's :class:`UnitTable`, reduced by the database (see :func:`supports`)."""
    dialect, params = engine.dialect.name, _params(plan)
    # one snapshot for both statements (PostgreSQL), so rows logged meanwhile enter neither;
    # SQLite's ids grow with its single writer's commits: the stream stops at the last one
    level = {"isolation_level": "REPEATABLE READ"} if dialect == "postgresql" else {}
    with unavailable_as_typed(), engine.connect().execution_options(**level) as conn:
        if dialect == "postgresql":  # the GROUP BY and the sort in the server's memory
            conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        query = _groups_sql(dialect, str(plan.thresholds["loss"]))
        groups, keys = _load_groups(_chunks(conn, dialect, query, params, _FOUND))
        params["last"] = int(groups.pop("last").max()) if len(groups) else 0
        total = int(groups.pop("latencies").sum())
        _release()
        latency = _latency(conn, dialect, params, keys, total)
    _release()
    return UnitTable(groups, latency)


def _release() -> None:
    """Hand the heap the chunks freed back to the system (glibc's ``malloc_trim``): the
    parsed chunks leave the heap fragmented, and the rules' arrays would come on top of
    it, not in it (10^7 rows: 0.2 GB of the peak). A no-op elsewhere."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_groups(chunks: Iterator[pd.DataFrame]) -> tuple[pd.DataFrame, pd.Index]:
    """The unit table from the chunks of the ``GROUP BY``, a column at a time (10^6 units:
    0.1 GB, so never two copies of it at once), and the unit keys by code."""
    keys: list[np.ndarray] = []
    columns: dict[str, list[np.ndarray]] = {name: [] for name in _FOUND[1:]}
    for chunk in chunks:
        keys.append(chunk["k"].to_numpy())
        for name, parts in columns.items():
            parts.append(pd.to_numeric(chunk[name]).to_numpy(float))
    key = np.concatenate(keys) if keys else np.empty(0, object)
    del keys
    codes, unique = pd.factorize(key)
    del key
    # one row per (unit, arm): a pair twice is two units with one hash
    pairs = codes * 2 + (np.concatenate(columns["b"]) != 0 if codes.size else 0)
    pairs.sort()
    if (pairs[1:] == pairs[:-1]).any():
        raise KeyCollision("two units of the look share a key hash")
    del pairs
    table: dict[str, np.ndarray] = {"unit": codes}
    for name in _FOUND[1:]:
        table[name] = np.concatenate(columns.pop(name)) if codes.size else np.empty(0)
    table["b"] = table["b"] != 0
    return pd.DataFrame(table, copy=False), pd.Index(unique)


def _latency(
    conn: Any, dialect: str, params: dict[str, Any], keys: pd.Index, total: int
) -> pd.DataFrame:
    """The requests with a latency in served order (ties by id, as the log's order), read
    in chunks into arrays sized once (13 bytes a request)."""
    out = _Requests(total, keys)
    query = (
        f"SELECT {_KEY[dialect]} AS k, b, latency_ms "
        f"FROM ({_rows_sql(dialect, labels=False)}) AS r "
        "WHERE latency_ms IS NOT NULL AND id <= :last ORDER BY ts, id"
    )
    for chunk in _chunks(conn, dialect, query, params, ("k", "b", "latency_ms")):
        out.add(chunk)
    return out.frame()


class _Requests:
    """Arrays of the requests with a latency, filled chunk by chunk."""

    def __init__(self, total: int, keys: pd.Index) -> None:
        self.keys, self.done = keys, 0
        self.unit = np.empty(total, np.int32)
        self.b = np.empty(total, bool)
        self.latency = np.empty(total, float)

    def add(self, chunk: pd.DataFrame) -> None:
        # rows beyond the count of the GROUP BY were logged in between: a later look has them
        chunk = chunk.iloc[: self.unit.size - self.done]
        end = self.done + len(chunk)
        self.unit[self.done : end] = self.keys.get_indexer(pd.Index(chunk["k"].to_numpy()))
        self.b[self.done : end] = chunk["b"].to_numpy(int) != 0
        self.latency[self.done : end] = chunk["latency_ms"].to_numpy(float)
        self.done = end

    def frame(self) -> pd.DataFrame:
        n = self.done
        return pd.DataFrame(
            {"unit": self.unit[:n], "b": self.b[:n], "latency_ms": self.latency[:n]}
        )


def _chunks(
    conn: Any, dialect: str, query: str, params: dict[str, Any], names: tuple[str, ...]
) -> Iterator[pd.DataFrame]:
    """The rows of ``query`` a few MB at a time, as frames (column ``k`` text, the others
    numbers, NULL as NaN): never every row as Python tuples at once."""
    if dialect != "postgresql":
        result = conn.execution_options(stream_results=True).execute(text(query), params)
        for part in result.partitions(CHUNK):
            yield pd.DataFrame.from_records(part, columns=list(names))
        return
    # COPY ... TO STDOUT as CSV, parsed by pandas: 10x faster than fetching row tuples
    cursor = conn.connection.driver_connection.cursor()
    statement = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", query)
    blocks: list[bytes] = []
    size = 0
    with cursor.copy(f"COPY ({statement}) TO STDOUT WITH (FORMAT csv)", params) as copy:
        for block in copy:
            blocks.append(bytes(block))
            size += len(block)
            if size >= COPY_BYTES:
                data = b"".join(blocks)
                cut = data.rfind(b"\n") + 1
                yield _csv(data[:cut], names)
                blocks, size = [data[cut:]], len(data) - cut
    if size:
        yield _csv(b"".join(blocks), names)


def _csv(data: bytes, names: tuple[str, ...]) -> pd.DataFrame:
    return pd.read_csv(
        io.BytesIO(data),
        names=list(names),
        dtype={"k": "int64"},  # the key's hash (_KEY)
        keep_default_na=False,  # a unit named "NA" stays a unit; only an empty field is NULL
        na_values={n: [""] for n in names if n != "k"},
    )
