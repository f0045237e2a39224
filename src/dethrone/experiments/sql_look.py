"""A look's rows reduced where they live: per-unit sums in the database, kept between looks.

:func:`reduce_in_database` builds the same :class:`~dethrone.experiments.look_table.UnitTable`
as :func:`~dethrone.experiments.look_table.reduce_frame` does from the rows in memory, so
:func:`~dethrone.experiments.rules.decide` gives the same outcome and interval, while the
process holds one row per (unit, arm) instead of every row.

**Incremental.** A row's part in a look becomes final early: its *served* part (rows,
errors, first times, the p99 guardrail's verdict, which depends only on the requests before
it) once it is in the log, its *eligible* part (eligible, labelled, loss) once its label
window has closed. So each look first folds into ``look_units`` (per scope: the look's
salt, versions, arms, start, loss and window) the served part of the rows served more than
:data:`SETTLE` ago and the eligible part of those whose window closed more than
:data:`SETTLE` ago (``MERGE`` on PostgreSQL, ``INSERT ... ON CONFLICT`` on SQLite), then
reads those sums merged with the ``GROUP BY`` of the rows after the two watermarks: about
two minutes of rows, whatever the label window. The sums are committed only with their
watermarks (``look_scopes``), and a look that finds another one advancing the same scope
reads without advancing, so two looks never fold a row twice. The arms' p99 figures read
a kept tail of each arm's largest latencies (``look_tail``).

Bounds: a label written to ``feedback`` more than :data:`SETTLE` after its window closed,
or a row written late by a transaction older than the last fold, is not in the sums. A
row replayed later from the gateway's spool is: rows with an id past the log's last at the
last fold enter at the next look, ordered by their time among the rows not yet folded.

The losses computed in SQL are those of numbers (``absolute_error``, ``squared_error``):
the database parses the JSON number's text as Python's ``float`` does (both correctly
rounded), and a difference, its absolute value and square are exact IEEE operations, so
every row's loss is the same double. Class probabilities (log loss, Brier, 0/1) and shadow
mode (losses paired by request) are read in memory by the caller instead.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, inspect, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from dethrone.experiments.look_table import (
    GROUP_COLUMNS,
    P99,
    LookPlan,
    UnitTable,
    latency_caps,
    linear_quantile,
)
from dethrone.experiments.look_table import _epoch_starts as epoch_starts
from dethrone.store.engine import write_transaction
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import look_scopes, predictions

log = logging.getLogger(__name__)

__all__ = [
    "SETTLE",
    "SQL_DIALECTS",
    "SQL_LOSSES",
    "KeyCollision",
    "reduce_in_database",
    "supports",
]


class KeyCollision(LookupError):
    """Two units share a 64-bit key hash (about once in 10^7 looks at 10^6 units): the
    caller reads the rows instead."""


#: seconds after a row's time (for its served part) or its label window's end (for its
#: eligible part) before it is folded into the kept sums: the gateway writes a row and a
#: label within a second (its log flushes every 0.5 s), so this leaves a minute for a slow
#: flush and the clocks of the gateways and the scheduler. A look reduces the rows of
#: about twice this span afresh (10^3 requests a second: 10^5 rows, a second)
SETTLE = 60.0
#: beyond any time (a window open at one end)
_END = 1e308
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
_KEY = {"postgresql": "hashtextextended({k}, 0)", "sqlite": "{k}"}
#: keeps the rows' subquery a plan node of its own: else PostgreSQL inlines the loss (two
#: JSON parses) into each of the four aggregates that read it (1e6 rows: 3.7 s, not 4.5 s)
_ONCE = {"postgresql": "OFFSET 0", "sqlite": ""}
#: per-row loss of ``yhat`` against ``y``, as :func:`~dethrone.experiments.live_loss.live_losses`
_LOSS = {"absolute_error": "ABS(yhat - y)", "squared_error": "(yhat - y) * (yhat - y)"}
SQL_LOSSES = tuple(_LOSS)
SQL_DIALECTS = tuple(_NUMBER)
#: the table's columns as the database gives them: the unit's key, then GROUP_COLUMNS
_FOUND = ("k", *GROUP_COLUMNS[1:])
#: GROUP_COLUMNS that add up when parts merge (the others are first times: the least)
_SUMS = ("rows", "errors", "eligible", "labelled", "loss_sum", "latencies", "tested", "slow")
_PARTS = GROUP_COLUMNS[2:]
#: requests fetched per round trip (SQLite): ~1 MB of Python objects at a time
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


@dataclass(frozen=True)
class _Window:
    """Which rows a statement reduces, and for what. A row's *served* part (rows, errors,
    first times, latency verdicts) is taken when it was served in ``[s_lo, s_hi)``, or
    before ``s_lo`` with an id past ``last`` (written after the last fold: late); its
    *eligible* part (eligible, labelled, loss) when served in ``[e_lo, e_hi)`` and by the
    look's ``until``, or before ``e_lo`` with an id past ``last``. The first request with
    a latency taken is number ``n0`` of the guardrail's served order, whose caps are
    ``caps``."""

    s_lo: float = -_END
    s_hi: float = _END
    e_lo: float = -_END
    e_hi: float = _END
    last: int = 2**62
    n0: int = 0
    caps: dict[int, float | None] = field(default_factory=dict)
    scope: int | None = None
    #: each arm's kept tail (``look_tail``): its floor and how many latencies it holds
    tails: dict[int, tuple[float, int]] = field(default_factory=dict)

    def params(self, plan: LookPlan) -> dict[str, Any]:
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
            **{k: getattr(self, k) for k in ("s_lo", "s_hi", "e_lo", "e_hi", "last")},
            "n0": self.n0,
            "scope": self.scope,
            **{f"cap{i}": cap for i, cap in enumerate(self.caps.values())},
        }


#: every row of the look
_ALL = _Window()


def _rows_sql(dialect: str, *, labels: bool = True, few: bool = False) -> str:
    """The look's rows (rule 1) of a :class:`_Window` with their unit key, arm, error and
    numeric values; with their labels (a join) or not. ``few``: a window of the last
    minutes, whose labels PostgreSQL then looks up by key (else it hashes every label:
    10^7 rows, 5 s)."""
    number = _NUMBER[dialect]
    join = 'LEFT JOIN feedback f ON f.request_id = p.request_id AND f."row" = p."row"'
    if few and dialect == "postgresql":
        join = (
            "LEFT JOIN LATERAL (SELECT label, received_at FROM feedback f1 "
            'WHERE f1.request_id = p.request_id AND f1."row" = p."row" LIMIT 1) f ON TRUE'
        )  # (the LIMIT keeps it a lookup per row: else the planner makes it the join again)
    label, labelled_at = (
        (number.format(x="f.label"), "f.received_at") if labels else ("NULL", "NULL")
    )
    served = "(p.ts >= :s_lo AND p.ts < :s_hi) OR (p.id > :last AND p.ts < :s_lo)"
    eligible = (  # (each a plain OR of ranges of an index: PostgreSQL ORs bitmap scans)
        "(p.ts >= :e_lo AND p.ts < :e_hi AND p.ts <= :until) "
        "OR (p.id > :last AND p.ts < :e_lo AND p.ts <= :until)"
    )
    return f"""
SELECT CASE WHEN p.unit IS NOT NULL AND p.unit <> '' AND p.unit <> 'None'
            THEN 'u:' || p.unit ELSE 'r:' || p.request_id END AS k,
       CASE WHEN p.arm = 'champion' THEN 0 ELSE 1 END AS b,
       p.id, p.ts, p.latency_ms,
       CASE WHEN {served} THEN 1 ELSE 0 END AS fs,
       CASE WHEN {eligible} THEN 1 ELSE 0 END AS fe,
       CASE WHEN p.prediction IS NULL OR CAST(p.prediction AS TEXT) = 'null'
            THEN 1 ELSE 0 END AS err,
       {labelled_at} AS labelled_at,
       {number.format(x="p.prediction")} AS yhat,
       {label} AS y
FROM predictions p
{join if labels else ""}
WHERE p.salt = :salt AND p.ts >= :since
  AND ({served} OR {eligible})
  AND ((p.arm = 'champion' AND p.model_version = :version_a)
       OR (p.arm IN (:arm_b1, :arm_b2) AND p.model_version = :version_b))
"""


def _caps_sql(caps: dict[int, float | None]) -> str:
    """The cap of a request's place ``pos`` in served order (NULL: not tested)."""
    none = "CAST(NULL AS DOUBLE PRECISION)"
    if not caps:
        return none
    whens = [f"WHEN pos IS NULL OR pos < {min(caps)} THEN {none}"]
    for i, (start, cap) in enumerate(caps.items()):
        value = none if cap is None else f"CAST(:cap{i} AS DOUBLE PRECISION)"
        whens.append(f"WHEN pos < {2 * start} THEN {value}")
    return f"CASE {' '.join(whens)} ELSE {none} END"


def _groups_cte(dialect: str, loss: str, caps: dict[int, float | None], few: bool) -> str:
    """``WITH ... g``: :data:`GROUP_COLUMNS` per (unit key text, arm) of a window's rows
    (their served part, their eligible part, or both: :class:`_Window`); a row is labelled
    as in ``select_rows`` (rule 3), a request tested and slow as in ``reduce_frame`` (its
    place: ``n0`` plus its rank among the window's served requests, in served order)."""
    return f"""
WITH r AS ({_rows_sql(dialect, few=few)}),
q AS (
  SELECT r.*, CASE WHEN fs = 1 AND latency_ms IS NOT NULL
         THEN :n0 + ROW_NUMBER() OVER (
                    PARTITION BY fs = 1 AND latency_ms IS NOT NULL ORDER BY ts, id) - 1
         END AS pos
  FROM r
),
s AS (
  SELECT k, b, id, ts, fs, fs * err AS err, CASE WHEN fs = 1 THEN latency_ms END AS latency_ms,
         CASE WHEN fe = 1 AND err = 0 THEN 1 ELSE 0 END AS elig,
         CASE WHEN fe = 1 AND err = 0 AND labelled_at - ts <= :window
              THEN {_LOSS[loss]} END AS loss,
         {_caps_sql(caps)} AS cap
  FROM q {_ONCE[dialect]}
),
g AS (
  SELECT k, b, SUM(fs) AS "rows", SUM(err) AS errors,
         MIN(CASE WHEN fs = 1 THEN ts END) AS t, MIN(CASE WHEN fs = 1 THEN id END) AS tie,
         SUM(elig) AS eligible,
         MIN(CASE WHEN elig = 1 THEN ts END) AS t_eligible,
         MIN(CASE WHEN elig = 1 THEN id END) AS tie_eligible,
         COUNT(loss) AS labelled,
         MIN(CASE WHEN loss IS NOT NULL THEN ts END) AS t_labelled,
         MIN(CASE WHEN loss IS NOT NULL THEN id END) AS tie_labelled,
         COALESCE(SUM(loss), 0) AS loss_sum,
         COUNT(latency_ms) AS latencies, COUNT(cap) AS tested,
         SUM(CASE WHEN latency_ms > cap THEN 1 ELSE 0 END) AS slow,
         MIN(CASE WHEN cap IS NOT NULL THEN ts END) AS t_tested,
         MIN(CASE WHEN cap IS NOT NULL THEN id END) AS tie_tested
  FROM s GROUP BY k, b
)
"""


def _merged(column: str, old: str, new: str) -> str:
    """The kept ``old`` and the window's ``new`` value of a column as one: sums add (a side
    missing counts 0), first times take the least (NULL meaning none)."""
    if column in _SUMS:
        return f"COALESCE({old}, 0) + COALESCE({new}, 0)"
    return f"CASE WHEN {new} IS NULL OR {old} <= {new} THEN {old} ELSE {new} END"


def _columns(prefix: str = "") -> str:
    return ", ".join(f'{prefix}"{c}"' for c in _PARTS)


def _fold_sql(dialect: str, loss: str, caps: dict[int, float | None], few: bool) -> str:
    """Add a window's groups to the scope's kept sums (``look_units``): PostgreSQL's
    ``MERGE`` (6·10^5 units: 3.1 s, ``ON CONFLICT`` 4.3 s), SQLite's upsert."""
    merged = []
    for c in _PARTS:
        old, new = (
            (f'u."{c}"', f'g."{c}"')
            if dialect == "postgresql"
            else (
                f'look_units."{c}"',
                f'excluded."{c}"',
            )
        )
        merged.append(f'"{c}" = {_merged(c, old, new)}')
    cte = _groups_cte(dialect, loss, caps, few)
    if dialect == "postgresql":
        return f"""{cte}
MERGE INTO look_units u USING g ON u.scope_id = :scope AND u.k = g.k AND u.b = g.b
WHEN MATCHED THEN UPDATE SET {", ".join(merged)}
WHEN NOT MATCHED THEN INSERT (scope_id, k, b, {_columns()})
  VALUES (:scope, g.k, g.b, {_columns("g.")})
"""
    # (SQLite needs the WHERE to read ON CONFLICT as the upsert's, not a join's)
    return f"""{cte}
INSERT INTO look_units (scope_id, k, b, {_columns()})
SELECT :scope, k, b, {_columns()} FROM g WHERE 1 = 1
ON CONFLICT (scope_id, k, b) DO UPDATE SET {", ".join(merged)}
"""


def _read_sql(dialect: str, loss: str, caps: dict[int, float | None], kept: bool) -> str:
    """The look's table: the window's groups, merged with the scope's kept sums (a full
    join of the few new groups to the kept ones: a ``GROUP BY`` of both hashes 10^6 units
    again, 3.6 s)."""
    key = _KEY[dialect]
    if not kept:
        cte = _groups_cte(dialect, loss, caps, few=False)
        return f"{cte} SELECT {key.format(k='k')} AS k, b, {_columns()} FROM g"
    merged = []
    for c in _PARTS:
        old, new = f'u."{c}"', f'g."{c}"'
        merged.append(f'{_merged(c, old, new)} AS "{c}"')
    return f"""{_groups_cte(dialect, loss, caps, few=True)}
SELECT {key.format(k="COALESCE(u.k, g.k)")} AS k, COALESCE(u.b, g.b) AS b, {", ".join(merged)}
FROM (SELECT * FROM look_units WHERE scope_id = :scope) u
FULL JOIN g ON g.k = u.k AND g.b = u.b
"""


def _scope_key(dialect: str, plan: LookPlan) -> str:
    """What makes two looks' kept sums the same: every input of a row's part but ``now``."""
    what = [
        dialect,
        plan.salt,
        plan.since,
        plan.version_a,
        plan.version_b,
        list(plan.arms_b),
        plan.phase,
        str(plan.thresholds["loss"]),
        plan.label_window,
    ]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def reduce_in_database(engine: Any, plan: LookPlan, *, keep: bool = True) -> UnitTable:
    """The look's :class:`UnitTable`, reduced by the database (see :func:`supports`).

    ``keep``: fold the rows whose part is final into the kept sums first, and read them
    (the default); else reduce every row of the look and write nothing.
    """
    dialect, loss = engine.dialect.name, str(plan.thresholds["loss"])
    if keep:
        _advance(engine, plan)
    # one snapshot for every statement (PostgreSQL), so rows logged meanwhile enter none
    level = {"isolation_level": "REPEATABLE READ"} if dialect == "postgresql" else {}
    with unavailable_as_typed(), engine.connect().execution_options(**level) as conn:
        _tune(conn)
        window = _kept(conn, dialect, plan) if keep else _ALL
        n = window.n0 + sum(_requests(conn, dialect, window, plan))
        window = dataclasses.replace(
            window, caps=_complete_caps(conn, dialect, plan, window.caps, n)[0]
        )
        query = _read_sql(dialect, loss, window.caps, window.scope is not None)
        groups = _load_groups(_chunks(conn, dialect, query, window.params(plan), _FOUND))
        _release()
        p99 = _p99(conn, dialect, plan, groups, window)
    _release()
    return UnitTable(groups, p99)


def _tune(conn: Any) -> None:
    """PostgreSQL, for this transaction: the GROUP BY and the sorts in the server's memory,
    and no JIT compilation (a second per statement, more than a window's rows take)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"SET LOCAL work_mem = '{WORK_MEM}'"))
        conn.execute(text("SET LOCAL jit = off"))


def _kept(conn: Any, dialect: str, plan: LookPlan) -> _Window:
    """The rows after the scope's kept sums (all when none are kept that this look can
    use: a look dated before their watermark needs rows they hold as not yet final)."""
    if not inspect(conn).has_table("look_scopes"):  # (a database not yet migrated)
        return _ALL
    row = conn.execute(
        select(look_scopes).where(look_scopes.c.key == _scope_key(dialect, plan))
    ).first()
    if row is None or row.served_until > _served_until(plan):
        return _ALL
    return _Window(
        s_lo=row.served_until,
        e_lo=row.closed_until,
        last=int(row.last_id),
        n0=int(row.requests),
        caps={int(k): v for k, v in (row.caps or {}).items()},
        scope=row.id,
        tails={
            int(arm): (t["floor"], int(t["count"]))
            for arm, t in (row.tail or {}).items()
            if arm != "folded"
        },
    )


def _served_until(plan: LookPlan) -> float:
    """Rows served before it have their served part final (they are in the log)."""
    return plan.now - SETTLE


def _closed_until(plan: LookPlan) -> float:
    """Rows served before it have their eligible part final (their label window closed)."""
    return plan.eligible_until - SETTLE


def _requests(conn: Any, dialect: str, window: _Window, plan: LookPlan) -> tuple[int, int]:
    """How many requests with a latency the window takes (its served part's), per arm."""
    query = (
        "SELECT SUM(CASE WHEN fs = 1 AND latency_ms IS NOT NULL AND b = 0 THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN fs = 1 AND latency_ms IS NOT NULL AND b = 1 THEN 1 ELSE 0 END) "
        f"FROM ({_rows_sql(dialect, labels=False)}) r"
    )
    a, b = conn.execute(text(query), window.params(plan)).one()
    return int(a or 0), int(b or 0)


def _advance(engine: Any, plan: LookPlan) -> None:
    """Fold the rows that became final since the scope's watermark into its kept sums,
    in one transaction with the new watermark; nothing when another look is doing it."""
    dialect = engine.dialect.name
    key = _scope_key(dialect, plan)
    try:
        with engine.begin() as conn:  # the scope's row, once (no-op when it exists)
            _create_scope(conn, dialect, key, plan)
        _fold(engine, plan, key)
    except sa_exc.DBAPIError as exc:
        # another look advanced the scope meanwhile (PostgreSQL's serialization error), or
        # this look cannot write (``dethrone experiment status`` opens SQLite read-only, a
        # database not yet migrated): it reads what is kept, or every row
        why = str(exc.orig).strip()
        quiet = getattr(exc.orig, "sqlstate", None) == "40001" or "read" in why.lower()
        log.log(logging.DEBUG if quiet else logging.WARNING, "kept sums not advanced: %s", why)


def _create_scope(conn: Any, dialect: str, key: str, plan: LookPlan) -> None:
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = dict(
        key=key,
        served_until=plan.since,
        closed_until=plan.since,
        last_id=0,
        requests=0,
        caps={},
        tail={},
        updated_at=time.time(),
    )
    conn.execute(insert(look_scopes).values(**values).on_conflict_do_nothing())


def _fold(engine: Any, plan: LookPlan, key: str) -> None:
    served, closed = _served_until(plan), _closed_until(plan)
    with _fold_transaction(engine) as conn:
        row = conn.execute(select(look_scopes).where(look_scopes.c.key == key)).one()
        if served <= row.served_until:
            return
        claim = (
            update(look_scopes)
            .where(look_scopes.c.id == row.id, look_scopes.c.served_until == row.served_until)
            .values(served_until=served, closed_until=closed, updated_at=time.time())
        )
        if conn.execute(claim).rowcount != 1:  # another look advanced it: read what it kept
            return
        _tune(conn)
        _fold_from(conn, plan, row, served, closed)


@contextlib.contextmanager
def _fold_transaction(engine: Any) -> Iterator[Any]:
    """One snapshot on PostgreSQL (a look advancing the scope meanwhile makes the claim
    fail with a serialization error); SQLite's write lock from the first statement."""
    if engine.dialect.name != "postgresql":
        with write_transaction(engine) as conn:
            yield conn
        return
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            yield conn


def _fold_from(conn: Any, plan: LookPlan, row: Any, served: float, closed: float) -> None:
    """Fold the served part of the rows of ``[row.served_until, served)`` and the eligible
    part of those of ``[row.closed_until, closed)``, with those logged late."""
    dialect, loss = conn.dialect.name, str(plan.thresholds["loss"])
    known = {int(k): v for k, v in (row.caps or {}).items()}
    window = _Window(
        s_lo=row.served_until,
        s_hi=served,
        e_lo=row.closed_until,
        e_hi=closed,
        last=int(row.last_id),
        n0=int(row.requests),
        scope=row.id,
    )
    # the log's last id in this snapshot: a row past it was written after this fold
    last = conn.execute(select(func.max(predictions.c.id))).scalar() or 0
    arms = _requests(conn, dialect, window, plan)
    new = sum(arms)
    caps, final = _complete_caps(conn, dialect, plan, known, window.n0 + new)
    few = row.served_until > plan.since
    fold = _fold_sql(dialect, loss, caps, few)
    conn.execute(text(fold), dataclasses.replace(window, caps=caps).params(plan))
    tail = _fold_tails(conn, plan, window, dict(row.tail or {}), arms)
    conn.execute(
        update(look_scopes)
        .where(look_scopes.c.id == row.id)
        .values(
            requests=window.n0 + new,
            last_id=max(window.last, int(last)),
            caps={str(k): v for k, v in {**known, **final}.items()},
            tail=tail,
        )
    )


def _complete_caps(
    conn: Any, dialect: str, plan: LookPlan, known: dict[int, float | None], total: int
) -> tuple[dict[int, float | None], dict[int, float | None]]:
    """The caps of every epoch of ``total`` requests (:func:`latency_caps`), the unknown
    ones from the first requests in served order; and those of them that are final (every
    request before the epoch served more than :data:`SETTLE` ago: none can still arrive)."""
    starts = epoch_starts(total)
    missing = [s for s in starts if s not in known]
    if not missing:
        return {s: known[s] for s in starts}, {}
    values, reference, last_ts = _first_requests(conn, dialect, plan, max(missing))
    found = latency_caps(values, reference, missing)
    final = {s: found[s] for s in missing if last_ts.get(s, math.inf) < plan.now - SETTLE}
    return {s: known[s] if s in known else found[s] for s in starts}, final


def _first_requests(
    conn: Any, dialect: str, plan: LookPlan, n: int
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """The first ``n`` requests with a latency in served order: their latencies, which are
    the reference arm's, and the time of the request before each epoch start."""
    query = (
        f"SELECT b, latency_ms, ts FROM ({_rows_sql(dialect, labels=False)}) r "
        f"WHERE latency_ms IS NOT NULL ORDER BY ts, id LIMIT {int(n)}"
    )
    values, b = np.empty(n), np.empty(n, bool)
    last_ts: dict[int, float] = {}
    done = 0
    names = ("b", "latency_ms", "ts")
    for chunk in _chunks(conn, dialect, query, _ALL.params(plan), names):
        end = done + len(chunk)
        values[done:end] = chunk["latency_ms"].to_numpy(float)
        b[done:end] = chunk["b"].to_numpy(int) != 0
        ts = chunk["ts"].to_numpy(float)
        for start in epoch_starts(n + 1):
            if done < start <= end:
                last_ts[start] = float(ts[start - 1 - done])
        done = end
    values, b = values[:done], b[:done]
    return values, b if plan.guardrail_phase else ~b, last_ts


#: the share of an arm's folded requests whose latencies ``look_tail`` keeps: the p99
#: needs the top 1%; kept between half and twice this share (then re-cut)
TAIL_SHARE = 0.02
#: an arm's folded requests before it has a tail (below, a scan of the log is cheap)
TAIL_FROM = 1000


def _p99(
    conn: Any, dialect: str, plan: LookPlan, groups: pd.DataFrame, window: _Window
) -> tuple[float, float]:
    """Each arm's p99 latency over all its requests, as ``numpy.quantile`` gives it: the
    two values around its place, read from the top of the arm's latencies (1% of them):
    the kept tail with the window's requests above its floor when they hold that many,
    else a scan of the log."""
    out = []
    for arm in (0, 1):
        n = int(groups["latencies"].to_numpy()[groups["b"].to_numpy() == bool(arm)].sum())
        if n == 0:
            out.append(math.nan)
            continue
        below = int(math.floor((n - 1) * P99))
        at = {"arm": arm, "skip": max(n - 2 - below, 0)}
        query, params = _tail_sql(conn, plan, window, window.tails.get(arm), at, need=n - below)
        top = [float(v) for v in conn.execute(text(query), params).scalars()]
        upper, lower = (top[0], top[-1]) if below + 1 < n else (top[0], top[0])
        out.append(linear_quantile(lower, upper, n, P99))
    return out[0], out[1]


def _tail_sql(
    conn: Any,
    plan: LookPlan,
    window: _Window,
    tail: tuple[float, int] | None,
    at: dict[str, Any],
    *,
    need: int,
) -> tuple[str, dict[str, Any]]:
    """The arm's two latencies at ``:skip`` from the top: among the kept tail and the
    window's requests above its floor when these are at least ``need``, else among all
    the look's requests (a scan of the log)."""
    rows = _rows_sql(conn.dialect.name, labels=False)
    order = "ORDER BY latency_ms DESC LIMIT 2 OFFSET :skip"
    if tail is not None:
        params = {**window.params(plan), **at, "floor": tail[0]}
        fresh = (
            f"SELECT latency_ms FROM ({rows}) r WHERE fs = 1 AND b = :arm AND latency_ms >= :floor"
        )
        found = conn.execute(text(f"SELECT COUNT(*) FROM ({fresh}) f"), params).scalar()
        if tail[1] + int(found or 0) >= need:
            kept = "SELECT latency_ms FROM look_tail WHERE scope_id = :scope AND b = :arm"
            return f"SELECT latency_ms FROM ({kept} UNION ALL {fresh}) c {order}", params
    everything = f"SELECT latency_ms FROM ({rows}) r WHERE latency_ms IS NOT NULL AND b = :arm"
    return f"{everything} {order}", {**_ALL.params(plan), **at}


def _fold_tails(
    conn: Any, plan: LookPlan, window: _Window, tail: dict[str, Any], new: tuple[int, int]
) -> dict[str, Any]:
    """Keep each arm's tail: the latencies of its folded requests at or above a floor
    (the window's ``new`` ones added); a floor cut anew at :data:`TAIL_SHARE` of the
    arm's folded requests (``tail["folded"]``) when there is none yet or the tail left
    its bounds."""
    dialect, out = conn.dialect.name, dict(tail)
    folded = [a + b for a, b in zip(out.get("folded", [0, 0]), new, strict=True)]
    out["folded"] = folded
    for arm in (0, 1):
        n, state = folded[arm], out.get(str(arm))
        params = {**window.params(plan), "arm": arm}
        if state is not None:
            fresh = (
                f"SELECT :scope, b, latency_ms FROM ({_rows_sql(dialect, labels=False)}) r "
                "WHERE fs = 1 AND b = :arm AND latency_ms >= :floor"
            )
            added = conn.execute(
                text(f"INSERT INTO look_tail (scope_id, b, latency_ms) {fresh}"),
                {**params, "floor": state["floor"]},
            ).rowcount
            state = {**state, "count": int(state["count"]) + int(added or 0)}
        if n >= TAIL_FROM and (
            state is None or not TAIL_SHARE / 2 * n <= state["count"] <= 2 * TAIL_SHARE * n
        ):
            state = _cut_tail(conn, plan, window, arm, n)
        if state is not None:
            out[str(arm)] = state
    return out


def _cut_tail(conn: Any, plan: LookPlan, window: _Window, arm: int, n: int) -> dict[str, Any]:
    """The arm's tail anew: every folded request's latency at or above the one at
    :data:`TAIL_SHARE` of ``n`` from the top (a scan of the folded part of the log)."""
    folded = dataclasses.replace(_ALL, s_hi=window.s_hi, e_lo=_END, e_hi=_END)
    params = {**folded.params(plan), "arm": arm, "scope": window.scope}
    rows = (
        f"SELECT b, latency_ms FROM ({_rows_sql(conn.dialect.name, labels=False)}) r "
        "WHERE fs = 1 AND b = :arm AND latency_ms IS NOT NULL"
    )
    floor = conn.execute(
        text(f"{rows} ORDER BY latency_ms DESC LIMIT 1 OFFSET {int(math.ceil(TAIL_SHARE * n))}"),
        params,
    ).first()
    conn.execute(text("DELETE FROM look_tail WHERE scope_id = :scope AND b = :arm"), params)
    value = -_END if floor is None else float(floor.latency_ms)
    added = conn.execute(
        text(
            "INSERT INTO look_tail (scope_id, b, latency_ms) "
            f"SELECT :scope, b, latency_ms FROM ({rows}) t WHERE latency_ms >= :floor"
        ),
        {**params, "floor": value},
    ).rowcount
    return {"floor": value, "count": int(added or 0)}


def _release() -> None:
    """Hand the heap the chunks freed back to the system (glibc's ``malloc_trim``): the
    parsed chunks leave the heap fragmented, and the rules' arrays would come on top of
    it, not in it (10^7 rows: 0.2 GB of the peak). A no-op elsewhere."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_groups(chunks: Iterator[pd.DataFrame]) -> pd.DataFrame:
    """The unit table from the chunks of the ``GROUP BY``, a column at a time (10^6 units:
    0.1 GB, so never two copies of it at once), units coded 0, 1, ..."""
    keys: list[np.ndarray] = []
    columns: dict[str, list[np.ndarray]] = {name: [] for name in _FOUND[1:]}
    for chunk in chunks:
        keys.append(chunk["k"].to_numpy())
        for name, parts in columns.items():
            parts.append(pd.to_numeric(chunk[name]).to_numpy(float))
    key = np.concatenate(keys) if keys else np.empty(0, object)
    del keys
    codes = pd.factorize(key)[0]
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
    return pd.DataFrame(table, copy=False)


def _chunks(
    conn: Any, dialect: str, query: str, params: dict[str, Any], names: tuple[str, ...]
) -> Iterator[pd.DataFrame]:
    """The rows of ``query`` a few MB at a time, as frames (column ``k`` the unit's key,
    the others numbers, NULL as NaN): never every row as Python tuples at once."""
    if dialect != "postgresql":
        result = conn.execution_options(stream_results=True).execute(text(query), params)
        for part in result.partitions(CHUNK):
            yield pd.DataFrame.from_records(part, columns=list(names))
        return
    # COPY ... TO STDOUT in binary, every field 8 bytes (NULL as NaN): rows of one width
    # that numpy reads in place (10^6 units of 19 columns: 0.1 s; as CSV, 1.3 s)
    fields = ", ".join(
        "CAST(q.k AS BIGINT)"
        if n == "k"
        else f"COALESCE(CAST(q.\"{n}\" AS DOUBLE PRECISION), 'NaN')"
        for n in names
    )
    statement = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", query)
    row = _binary_row(names)
    cursor = conn.connection.driver_connection.cursor()
    buffer, skip = bytearray(), _BINARY_HEADER
    copy_sql = f"COPY (SELECT {fields} FROM ({statement}) q) TO STDOUT WITH (FORMAT binary)"
    with cursor.copy(copy_sql, params) as copy:
        for block in copy:  # (a block is a row: gathered, then read a few MB at a time)
            buffer += block
            if len(buffer) >= COPY_BYTES:
                yield _binary(buffer, skip, row, names)
                del buffer[: skip + (len(buffer) - skip) // row.itemsize * row.itemsize]
                skip = 0
    if len(buffer) - skip >= row.itemsize:  # (then the trailer, -1 as 2 bytes)
        yield _binary(buffer, skip, row, names)


#: PostgreSQL's binary COPY header: signature, flags, extension length
_BINARY_HEADER = 19


def _binary_row(names: tuple[str, ...]) -> np.dtype:
    """A row of binary COPY: its field count, then each field's length and 8 bytes."""
    fields: list[tuple[str, str]] = [("count", ">i2")]
    for name in names:
        fields += [(f"length_{name}", ">i4"), (name, ">i8" if name == "k" else ">f8")]
    return np.dtype(fields)


def _binary(buffer: bytearray, skip: int, row: np.dtype, names: tuple[str, ...]) -> pd.DataFrame:
    """The whole rows of ``buffer`` after its first ``skip`` bytes (copied out of it)."""
    rows = np.frombuffer(buffer, dtype=row, count=(len(buffer) - skip) // row.itemsize, offset=skip)
    return pd.DataFrame({n: rows[n].astype(np.int64 if n == "k" else float) for n in names})
