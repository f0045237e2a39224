"""The traffic config and its history in the shared database (SQLite or PostgreSQL).

Same public interface as the seed-era ``dethrone_router.store.ConfigStore``, so the router can
swap it in, and several router replicas on different hosts then share one config. An update
runs in one transaction that locks the config row first (``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): concurrent updates queue, none is lost or
half-written, and the history gets exactly one entry per accepted change.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update

from dethrone.store import schema
from dethrone.store.engine import IMMEDIATE, sqlite_folder, write_transaction
from dethrone.store.errors import StoreUnavailable, VersionConflict, unavailable_as_typed
from dethrone.store.migrate import upgrade

__all__ = ["SqlConfigStore", "StoreUnavailable", "VersionConflict"]

_cfg, _hist = schema.config, schema.history


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SqlConfigStore:
    """Config and history in the database behind ``engine``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`dethrone.store.engine.make_engine`; the schema is migrated on creation.
    defaults : dict
        The config stored as version 0 when the database has none (no history entry).

    Raises
    ------
    StoreUnavailable
        From every method when the database is down, full or read-only.

    Examples
    --------
    >>> from dethrone.store.engine import make_engine
    >>> store = SqlConfigStore(make_engine("sqlite://"), {"a": 0.5})
    >>> store.update(lambda cfg: {**cfg, "a": 0.3})[0]
    1
    >>> store.current()
    (1, {'a': 0.3})
    """

    def __init__(self, engine: Engine, defaults: dict[str, Any]) -> None:
        self.engine = engine
        self._cache: tuple[int, dict[str, Any]] | None = None
        upgrade(engine)
        with unavailable_as_typed(), write_transaction(self.engine) as conn:
            if conn.execute(select(_cfg.c.id).where(_cfg.c.id == 1)).first() is None:
                conn.execute(insert(_cfg).values(id=1, version=0, body=json.dumps(defaults),
                                                 updated_at=_now()))

    def current(self) -> tuple[int, dict[str, Any]]:
        """The current ``(version, config)``; the config dict must not be mutated."""
        with unavailable_as_typed(), self.engine.connect() as conn:
            version, body = conn.execute(
                select(_cfg.c.version, _cfg.c.body).where(_cfg.c.id == 1)).one()
        cached = self._cache
        if cached is None or cached[0] != version:
            cached = (int(version), json.loads(body))
            self._cache = cached
        return cached

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]],
               expected_version: int | None = None) -> tuple[int, dict, dict]:
        """Atomically replace the config by ``change(current)``.

        Parameters
        ----------
        change : callable
            Gets the current config, returns the new one; may raise to abort (nothing is
            written then).
        expected_version : int, optional
            Abort with :class:`VersionConflict` unless this is the current version.

        Returns
        -------
        tuple
            ``(new_version, before, after)``.
        """
        with unavailable_as_typed(), write_transaction(self.engine) as conn:
            version, body = conn.execute(
                select(_cfg.c.version, _cfg.c.body).where(_cfg.c.id == 1).with_for_update()).one()
            if expected_version is not None and expected_version != version:
                raise VersionConflict(expected_version, version)
            before = json.loads(body)
            after = change(before)
            new_version, at = version + 1, _now()
            conn.execute(update(_cfg).where(_cfg.c.id == 1).values(
                version=new_version, body=json.dumps(after), updated_at=at))
            conn.execute(insert(_hist).values(version=new_version, at=at,
                                              before=json.dumps(before), after=json.dumps(after)))
        return new_version, before, after

    def updated_at(self) -> str:
        """Time of the last change (or of the store's creation)."""
        with unavailable_as_typed(), self.engine.connect() as conn:
            return conn.execute(select(_cfg.c.updated_at).where(_cfg.c.id == 1)).scalar_one()

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted changes, oldest first (the newest ``limit`` when given)."""
        query = select(_hist).order_by(_hist.c.version.desc())
        if limit:
            query = query.limit(limit)
        with unavailable_as_typed(), self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [{"version": v, "at": at, "before": json.loads(b), "after": json.loads(a)}
                for v, at, b, a in reversed(rows)]

    def writable(self) -> bool:
        """True when a write transaction can be opened right now."""
        folder = sqlite_folder(self.engine)
        try:
            with self.engine.connect() as conn:
                conn.execution_options(**{IMMEDIATE: True})
                with conn.begin() as tx:
                    # A write that changes nothing, rolled back: refused by a read-only file,
                    # a full disk, a read-only PostgreSQL (standby, default_transaction_read_only).
                    conn.execute(update(_cfg).where(_cfg.c.id == 1).values(version=_cfg.c.version))
                    tx.rollback()
        except Exception:  # noqa: BLE001 - any failure means "not writable now"
            return False
        # SQLite writes its -wal and -shm files next to the database.
        return folder is None or os.access(folder, os.W_OK)
