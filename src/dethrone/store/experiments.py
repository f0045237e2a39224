"""Live experiments and their looks in the router's database: what the experiment page reads.

The lifecycle writes the experiment's record (:class:`~dethrone.registry.records.LiveExperiment`
as a dict) each time it saves it, and each look's dict when it logs the look, so the page
(``/ui/``) never asks MLflow nor reads raw log rows at render time. Per-arm counts of the log
are aggregates on indexed columns (:func:`recent_traffic`), counted incrementally for a
whole experiment (:func:`arm_counts`: its settled part is stored after each look).

>>> from dethrone.store import make_engine, upgrade
>>> engine = make_engine("sqlite://")
>>> _ = upgrade(engine)
>>> save_experiment(engine, {"id": "live-v2-x", "state": "running", "started_at": 10.0,
...     "champion_version": "1", "challenger_version": "2", "mode": "ab", "split": 0.5,
...     "action": {"action": "start", "by": "ann", "reason": "try", "at": 10.0}})
>>> save_look(engine, "live-v2-x", {"time": 70.0, "phase": "experiment", "outcome": "continue"})
>>> [e["id"] for e in list_experiments(engine)], len(looks(engine, "live-v2-x"))
(['live-v2-x'], 1)
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlalchemy import Engine, and_, case, func, select

from dethrone.store.engine import write_transaction
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import experiment_looks, experiments, feedback, predictions

__all__ = [
    "arm_counts",
    "experiment",
    "list_experiments",
    "looks",
    "newest_row",
    "recent_traffic",
    "refresh_counts",
    "save_experiment",
    "save_look",
]

_exp, _looks = experiments, experiment_looks
#: states of a running experiment (listed first, refreshed by the page)
ACTIVE = ("starting", "running", "promoting", "guardrail", "rolling-back")


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def save_experiment(engine: Engine, record: dict[str, Any]) -> None:
    """Insert or update the experiment ``record["id"]`` (a ``LiveExperiment.to_dict()``).

    The record's ``action`` is appended to the row's ``actions`` when it is new, so the
    page shows every action although the record keeps only the last.
    """
    if not record.get("id"):
        raise ValueError("an experiment record needs an id")
    values = {
        "state": str(record.get("state") or "starting"),
        "started_at": _float(record.get("started_at")),
        "ended_at": _float(record.get("ended_at")),
        "outcome": record.get("outcome"),
        "champion_version": _str(record.get("champion_version")),
        "challenger_version": _str(record.get("challenger_version")),
        "mode": record.get("mode"),
        "split": _float(record.get("split")),
        "updated_at": time.time(),
        "record": record,
    }
    action = record.get("action")
    with unavailable_as_typed(), write_transaction(engine) as conn:
        row = conn.execute(select(_exp.c.actions).where(_exp.c.id == record["id"])).first()
        actions = list(row[0] or []) if row is not None else []
        if isinstance(action, dict) and action and action not in actions:
            actions.append(action)
        values["actions"] = actions
        if row is None:
            conn.execute(_exp.insert().values(id=record["id"], **values))
        else:
            conn.execute(_exp.update().where(_exp.c.id == record["id"]).values(**values))


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def save_look(engine: Engine, experiment_id: str, look: dict[str, Any], number: int | None = None):
    """Store one look (its ``to_dict()``) as look ``number`` (default: the next one).

    A look stored again under the same number (a retried task) replaces the first.
    """
    with unavailable_as_typed(), write_transaction(engine) as conn:
        if number is None:
            last = conn.execute(
                select(func.max(_looks.c.number)).where(_looks.c.experiment_id == experiment_id)
            ).scalar()
            number = int(last or 0) + 1
        key = and_(_looks.c.experiment_id == experiment_id, _looks.c.number == int(number))
        conn.execute(_looks.delete().where(key))
        conn.execute(
            _looks.insert().values(
                experiment_id=experiment_id,
                number=int(number),
                time=_float(look.get("time")) or time.time(),
                phase=str(look.get("phase") or "experiment"),
                outcome=look.get("outcome"),
                body=look,
            )
        )


def _experiment_row(row: Any) -> dict[str, Any]:
    record = dict(row.record or {})
    record.update(
        {
            "id": row.id,
            "state": row.state,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "outcome": row.outcome,
            "champion_version": row.champion_version,
            "challenger_version": row.challenger_version,
            "mode": row.mode,
            "split": row.split,
        }
    )
    record["actions"] = list(row.actions or [])
    record["updated_at"] = row.updated_at
    return record


def list_experiments(engine: Engine) -> list[dict[str, Any]]:
    """Every stored experiment: the active ones first, then the newest started first."""
    active = case((_exp.c.state.in_(ACTIVE), 0), else_=1)
    query = select(_exp).order_by(active, _exp.c.started_at.desc(), _exp.c.id)
    with unavailable_as_typed(), engine.connect() as conn:
        return [_experiment_row(r) for r in conn.execute(query)]


def experiment(engine: Engine, experiment_id: str) -> dict[str, Any] | None:
    """The stored record of ``experiment_id`` with its ``actions`` (None: not stored)."""
    with unavailable_as_typed(), engine.connect() as conn:
        row = conn.execute(select(_exp).where(_exp.c.id == experiment_id)).first()
    return None if row is None else _experiment_row(row)


def looks(engine: Engine, experiment_id: str) -> list[dict[str, Any]]:
    """The looks of ``experiment_id``, oldest first, each its dict plus ``number``."""
    query = (
        select(_looks.c.number, _looks.c.body)
        .where(_looks.c.experiment_id == experiment_id)
        .order_by(_looks.c.number)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        return [{**(body or {}), "number": number} for number, body in conn.execute(query)]


#: rows and labels older than this many seconds are "settled": counted once and kept (a row
#: waits at most ``LOG_FLUSH_SECONDS`` in the writer's buffer, a label is stamped as written)
SETTLE_SECONDS = 120.0
_memo: dict[tuple[str, float, float | None], dict[str, Any]] = {}
_memo_lock = threading.Lock()


def _zero(since: float, until: float | None) -> dict[str, Any]:
    return {"since": since, "until": until, "ts": None, "recv": None, "served": {}, "labelled": {}}


def _add(into: dict[str, int], key: str, n: Any) -> None:
    if n:
        into[key] = into.get(key, 0) + int(n)


def arm_counts(
    engine: Engine,
    experiment_id: str,
    *,
    since: float,
    until: float | None = None,
    now: float | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Logged rows per (arm, model version, served) of an experiment and how many are labelled.

    Counted incrementally: the settled part (older than :data:`SETTLE_SECONDS`) is kept in
    this process and in the experiment's row (:func:`refresh_counts`, called after each
    look), so a render counts only the rows logged and the labels received since; both are
    range scans of indexes (``predictions_ts_arm``, ``feedback_received_at``).

    Returns ``(rows, state)``: one dict per (arm, model_version, served) with ``rows`` and
    ``labelled``, and the settled state to store.
    """
    now = time.time() if now is None else now
    key = (experiment_id, float(since), None if until is None else float(until))
    with _memo_lock:
        base = _memo.get(key)
    if base is None:
        stored: Any = None
        with unavailable_as_typed(), engine.connect() as conn:
            stored = conn.execute(select(_exp.c.counts).where(_exp.c.id == experiment_id)).scalar()
        ok = isinstance(stored, dict) and (stored.get("since"), stored.get("until")) == key[1:]
        base = stored if ok else _zero(*key[1:])
    settle = now - SETTLE_SECONDS
    p, f = predictions, feedback
    in_range = [p.c.ts >= key[1]] + ([p.c.ts <= key[2]] if key[2] is not None else [])
    settled = case((p.c.ts <= settle, 1), else_=0)
    served_q = (
        select(p.c.arm, p.c.model_version, p.c.served, func.count(), func.sum(settled))
        .where(*in_range, *([p.c.ts > base["ts"]] if base["ts"] is not None else []))
        .group_by(p.c.arm, p.c.model_version, p.c.served)
    )
    got = case((f.c.received_at <= settle, 1), else_=0)
    labelled_q = (
        select(p.c.arm, p.c.model_version, p.c.served, func.count(), func.sum(got))
        .select_from(f.join(p, and_(p.c.request_id == f.c.request_id, p.c.row == f.c.row)))
        .where(*in_range, *([f.c.received_at > base["recv"]] if base["recv"] is not None else []))
        .group_by(p.c.arm, p.c.model_version, p.c.served)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        served_rows = conn.execute(served_q).all()
        labelled_rows = conn.execute(labelled_q).all()
    state = {
        **base,
        "ts": settle,
        "recv": settle,
        "served": dict(base["served"]),
        "labelled": dict(base["labelled"]),
    }
    total_served, total_labelled = dict(base["served"]), dict(base["labelled"])
    for arm, version, served, n, n_settled in served_rows:
        k = json.dumps([arm, version, bool(served)])
        _add(total_served, k, n)
        _add(state["served"], k, n_settled)
    for arm, version, served, n, n_settled in labelled_rows:
        k = json.dumps([arm, version, bool(served)])
        _add(total_labelled, k, n)
        _add(state["labelled"], k, n_settled)
    with _memo_lock:
        _memo[key] = state
    rows = []
    for k in sorted(set(total_served) | set(total_labelled)):
        arm, version, served = json.loads(k)
        rows.append(
            {
                "arm": arm,
                "model_version": version,
                "served": served,
                "rows": total_served.get(k, 0),
                "labelled": total_labelled.get(k, 0),
            }
        )
    return rows, state


def refresh_counts(engine: Engine, experiment_id: str, *, now: float | None = None) -> None:
    """Count the experiment's settled rows and labels up to now and store the state.

    Called after each look (which reads the log anyway), so a page render then counts only
    what arrived since the last look.
    """
    rec = experiment(engine, experiment_id)
    if rec is None or rec.get("started_at") is None:
        return
    _, state = arm_counts(
        engine, experiment_id, since=rec["started_at"], until=rec.get("ended_at"), now=now
    )
    with unavailable_as_typed(), write_transaction(engine) as conn:
        conn.execute(_exp.update().where(_exp.c.id == experiment_id).values(counts=state))


def recent_traffic(engine: Engine, *, since: float) -> list[dict[str, Any]]:
    """Requests, rows and latency per (arm, model version) of the rows logged since ``since``.

    Covered by the ``predictions_ts_arm`` index: no table row is read.
    """
    p = predictions
    query = (
        select(
            p.c.arm,
            p.c.model_version,
            func.count().label("rows"),
            func.avg(p.c.latency_ms),
            func.max(p.c.latency_ms),
            func.min(p.c.ts),
            func.max(p.c.ts),
        )
        .where(p.c.ts >= float(since))
        .group_by(p.c.arm, p.c.model_version)
        .order_by(p.c.arm, p.c.model_version)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        return [
            {
                "arm": arm,
                "model_version": version,
                "rows": int(rows),
                "mean_latency_ms": _float(mean),
                "max_latency_ms": _float(top),
                "first": first,
                "last": last,
            }
            for arm, version, rows, mean, top, first, last in conn.execute(query)
        ]


def newest_row(engine: Engine) -> dict[str, Any] | None:
    """Time and versions of the newest logged row (one step down ``predictions_ts``)."""
    p = predictions
    query = (
        select(p.c.ts, p.c.champion_version, p.c.challenger_version, p.c.salt)
        .order_by(p.c.ts.desc())
        .limit(1)
    )
    with unavailable_as_typed(), engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else dict(row._mapping)
