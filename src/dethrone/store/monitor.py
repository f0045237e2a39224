"""The drift monitor's results in the router's database (``monitor_results``).

The monitor writes one row per check; :func:`latest` is what the router's gauges and the
serving page read, and :func:`streak` how many drifted windows in a row end with a new one.

>>> from dethrone.store import make_engine, upgrade
>>> engine = make_engine("sqlite://")
>>> _ = upgrade(engine)
>>> save_result(engine, {"drifted": True}, status="checked", champion_version="1", now=10.0)
1
>>> latest(engine)["consecutive"]
1
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, delete, select

from dethrone.store.engine import write_transaction
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import monitor_results as _mon

__all__ = ["latest", "prune_results", "save_result", "streak"]

#: results kept per champion version; older ones are pruned by each write
KEEP = 1000


def streak(engine: Engine, champion_version: str) -> int:
    """Drifted checks in a row, newest first, of ``champion_version`` (skips don't break
    a streak: a window with too few rows says nothing either way)."""
    query = (
        select(_mon.c.status, _mon.c.drifted)
        .where(_mon.c.champion_version == str(champion_version))
        .order_by(_mon.c.time.desc(), _mon.c.id.desc())
        .limit(KEEP)
    )
    count = 0
    with unavailable_as_typed(), engine.connect() as conn:
        for status, drifted in conn.execute(query):
            if status != "checked":
                continue
            if not drifted:
                break
            count += 1
    return count


def save_result(
    engine: Engine,
    result: dict[str, Any],
    *,
    status: str,
    champion_version: str | None,
    run_id: str | None = None,
    now: float | None = None,
) -> int:
    """Store one check; returns the drifted windows in a row it completes (0 if none)."""
    drifted = bool(result.get("drifted")) and status == "checked"
    before = streak(engine, champion_version) if champion_version and drifted else 0
    consecutive = before + 1 if drifted else 0
    with unavailable_as_typed(), write_transaction(engine) as conn:
        conn.execute(
            _mon.insert().values(
                time=time.time() if now is None else now,
                champion_version=None if champion_version is None else str(champion_version),
                status=status,
                drifted=drifted,
                consecutive=consecutive,
                run_id=run_id,
                result=result,
            )
        )
    return consecutive


def latest(engine: Engine) -> dict[str, Any] | None:
    """The newest result as a dict (``None`` before the first check)."""
    query = select(_mon).order_by(_mon.c.time.desc(), _mon.c.id.desc()).limit(1)
    with unavailable_as_typed(), engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return None if row is None else dict(row)


def prune_results(engine: Engine, *, older_than: float) -> int:
    """Delete results older than the epoch ``older_than``; returns how many."""
    with unavailable_as_typed(), write_transaction(engine) as conn:
        return conn.execute(delete(_mon).where(_mon.c.time < older_than)).rowcount or 0
