"""The traffic config and its history in the shared database (SQLite or PostgreSQL).

The router's config store (it replaced the seed-era SQLite-only ``ConfigStore``, adopting its
file): several router replicas on different hosts then share one config. An update
runs in one transaction that locks the config row first (``SELECT ... FOR UPDATE`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): concurrent updates queue, none is lost or
half-written, and the history gets exactly one entry per accepted change.

Faults of the database are answered, not crashed on (issue 14): when it is down, full or
read-only, reads go on (a read-only view of an SQLite file, else the last config this process
read), writes raise :class:`StoreUnavailable` naming the store and the cause, a store that
could not be set up at start is set up by the first write that can, and every call tries the
normal path again, so service resumes by itself.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, insert, select, update

from dethrone.store import schema
from dethrone.store.engine import sqlite_folder, write_transaction
from dethrone.store.errors import StoreUnavailable, VersionConflict, unavailable_as_typed
from dethrone.store.migrate import upgrade

__all__ = ["SqlConfigStore", "StoreUnavailable", "VersionConflict"]

_cfg, _hist = schema.config, schema.history
log = logging.getLogger("dethrone.store")
#: seconds the last config is served without asking the database again after a failed read
READ_RETRY_SECONDS = 1.0
_SOURCE_TYPE = schema.history.c.source.type
assert isinstance(_SOURCE_TYPE, String) and _SOURCE_TYPE.length is not None  # String(n)
#: longest ``source`` of a change (the column's length)
MAX_SOURCE: int = _SOURCE_TYPE.length


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SqlConfigStore:
    """Config and history in the database behind ``engine``.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`dethrone.store.engine.make_engine`; the schema is migrated on creation
        (or by the first write, when the database cannot be written at creation).
    defaults : dict
        The config stored as version 0 when the database has none (no history entry).

    Raises
    ------
    StoreUnavailable
        From writes when the database is down, full or read-only; its message names the
        store (:attr:`path`) and the cause.

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
        self.defaults = defaults
        folder = sqlite_folder(engine)
        #: where the store is, for messages: the SQLite file, else the URL without password
        database = engine.url.database
        self.path = (
            str(Path(database).absolute())
            if folder is not None and database is not None
            else engine.url.render_as_string(hide_password=True)
        )
        self._cache: tuple[int, dict[str, Any]] | None = None
        self._probe: tuple[float, str | None] = (-1e9, None)
        self._read_retry_at = -1e9
        self._ready = False
        try:
            self._ensure_schema()
        except StoreUnavailable as exc:
            # A worker must start on a full or read-only disk too: it serves reads.
            log.warning("%s; serving reads only until it can write", exc)

    # ------------------------------------------------------------------ helpers
    def _unavailable(self, exc: StoreUnavailable, action: str) -> StoreUnavailable:
        cause = exc.text
        if "readonly" in cause and "read-only" not in cause:
            cause += " (read-only)"
        return StoreUnavailable(
            exc.cause, where=f"config store {self.path} cannot {action}", text=cause
        )

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        self._check_access()
        try:
            upgrade(self.engine)
            with unavailable_as_typed(), write_transaction(self.engine) as conn:
                if conn.execute(select(_cfg.c.id).where(_cfg.c.id == 1)).first() is None:
                    conn.execute(
                        insert(_cfg).values(
                            id=1, version=0, body=json.dumps(self.defaults), updated_at=_now()
                        )
                    )
        except StoreUnavailable as exc:
            self.engine.dispose()
            raise self._unavailable(exc, "write") from exc
        self._ready = True

    def _check_access(self) -> None:
        """Refuse a write up front when the OS says it cannot work: an SQLite file opened
        before a chmod stays writable through its descriptor, and a write accepted then
        would contradict /health."""
        folder = sqlite_folder(self.engine)
        if folder is None or "?" in str(folder):
            return
        target = Path(self.path) if Path(self.path).exists() else folder
        while not target.exists() and target != target.parent:
            target = target.parent
        if not os.access(target, os.W_OK) or (target != folder and not os.access(folder, os.W_OK)):
            raise StoreUnavailable(
                PermissionError(target),
                text=f"no write access to {target} (read-only)",
                where=f"config store {self.path} cannot write",
            )

    def _read_only_view(self) -> tuple[int, str] | None:
        """The config row read without any write (an SQLite file on a read-only disk, whose
        WAL index cannot be made): read-only, else immutable (nobody can write it then)."""
        folder = sqlite_folder(self.engine)
        if folder is None or not Path(self.path).exists():
            return None
        uri = Path(self.path).as_uri()
        for mode in ("mode=ro", "immutable=1"):
            try:
                conn = sqlite3.connect(f"{uri}?{mode}", uri=True, timeout=5.0)
                try:
                    return conn.execute("SELECT version, body FROM config WHERE id = 1").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:
                continue
        return None

    # ------------------------------------------------------------------ API
    def current(self) -> tuple[int, dict[str, Any]]:
        """The current ``(version, config)``; the config dict must not be mutated.

        When the database cannot be read the last config this process read is served (the
        defaults when there never was one), without asking the database again for
        :data:`READ_RETRY_SECONDS`: an unreachable host costs one connect timeout per second
        and worker, not one per request.
        """
        if self._cache is not None and time.monotonic() < self._read_retry_at:
            return self._cache
        row: Sequence[Any] | None  # (version, body)
        try:
            with unavailable_as_typed(), self.engine.connect() as conn:
                row = conn.execute(
                    select(_cfg.c.version, _cfg.c.body).where(_cfg.c.id == 1)
                ).first()
        except StoreUnavailable as exc:
            self.engine.dispose()
            self._read_retry_at = time.monotonic() + READ_RETRY_SECONDS
            row = self._read_only_view()
            if row is None:
                if self._cache is not None:
                    return self._cache
                if not self._ready:
                    return 0, self.defaults
                raise self._unavailable(exc, "read") from exc
        if row is None:
            return self._cache or (0, self.defaults)
        version, body = row
        cached = self._cache
        if cached is None or cached[0] != version:
            cached = (int(version), json.loads(body))
            self._cache = cached
        return cached

    def update(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        expected_version: int | None = None,
        *,
        source: str | None = None,
    ) -> tuple[int, dict, dict]:
        """Atomically replace the config by ``change(current)``.

        Parameters
        ----------
        change : callable
            Gets the current config, returns the new one; may raise to abort (nothing is
            written then).
        expected_version : int, optional
            Abort with :class:`VersionConflict` unless this is the current version.
        source : str, optional
            Who or what made the change, kept in its history entry.

        Returns
        -------
        tuple
            ``(new_version, before, after)``.

        Raises
        ------
        ValueError
            When ``source`` is longer than :data:`MAX_SOURCE` (nothing is written): PostgreSQL
            would refuse it, SQLite would store it.
        """
        if source is not None and len(source) > MAX_SOURCE:
            raise ValueError(f"source has {len(source)} characters; at most {MAX_SOURCE}")

        def apply(conn) -> tuple[int, dict, dict]:
            version, body = conn.execute(
                select(_cfg.c.version, _cfg.c.body).where(_cfg.c.id == 1).with_for_update()
            ).one()
            if expected_version is not None and expected_version != version:
                raise VersionConflict(expected_version, version)
            before = json.loads(body)
            after = change(before)
            new_version, at = version + 1, _now()
            conn.execute(
                update(_cfg)
                .where(_cfg.c.id == 1)
                .values(version=new_version, body=json.dumps(after), updated_at=at)
            )
            conn.execute(
                insert(_hist).values(
                    version=new_version,
                    at=at,
                    before=json.dumps(before),
                    after=json.dumps(after),
                    source=source,
                )
            )
            return new_version, before, after

        result = self._write(apply)
        self._cache = (result[0], result[2])
        return result

    def _write(self, apply: Callable[[Any], Any]) -> Any:
        """Run ``apply`` in one write transaction; retried once on fresh connections, since
        one opened while the file was read-only keeps SQLite's WAL index read-only."""
        self._ensure_schema()
        self._check_access()
        for attempt in (1, 2):
            try:
                with unavailable_as_typed(), write_transaction(self.engine) as conn:
                    result = apply(conn)
                self._read_retry_at = -1e9  # the database is back: read it again
                return result
            except StoreUnavailable as exc:
                self.engine.dispose()
                if attempt == 2:
                    raise self._unavailable(exc, "write") from exc
        raise AssertionError("unreachable")

    def updated_at(self) -> str:
        """Time of the last change (or of the store's creation)."""
        with unavailable_as_typed(), self.engine.connect() as conn:
            return conn.execute(select(_cfg.c.updated_at).where(_cfg.c.id == 1)).scalar_one()

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted changes, oldest first (the newest ``limit`` when given).

        Each is ``{"version", "at", "before", "after", "source"}``; ``source`` is None for a
        change made without one (and for every change made before the column existed).
        """
        cols = (_hist.c.version, _hist.c.at, _hist.c.before, _hist.c.after, _hist.c.source)
        query = select(*cols).order_by(_hist.c.version.desc())
        if limit:
            query = query.limit(limit)
        try:
            with unavailable_as_typed(), self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except StoreUnavailable as exc:
            self.engine.dispose()
            raise self._unavailable(exc, "read") from exc
        return [
            {"version": v, "at": at, "before": json.loads(b), "after": json.loads(a), "source": src}
            for v, at, b, a, src in reversed(rows)
        ]

    def write_problem(self, *, max_age: float = 1.0) -> str | None:
        """None when a real write commits right now, else why not.

        The probe commits a change of the config row and its undoing in one transaction:
        the row ends as it was, but the page is written, so the probe needs the space and
        access a config change needs (SQLite writes nothing for an update that changes no
        byte). Its answer is reused for ``max_age`` seconds, so health probes cannot turn
        into a stream of fsyncs.
        """
        at, problem = self._probe
        if time.monotonic() - at < max_age:
            return problem

        def probe(conn) -> None:
            row = _cfg.c.id == 1
            was = conn.execute(select(_cfg.c.updated_at).where(row).with_for_update()).scalar_one()
            conn.execute(update(_cfg).where(row).values(updated_at=was + "~"))
            conn.execute(update(_cfg).where(row).values(updated_at=was))

        try:
            self._write(probe)
            problem = None
        except StoreUnavailable as exc:
            problem = str(exc)
        self._probe = (time.monotonic(), problem)
        return problem

    def writable(self) -> bool:
        """True when a write can be committed right now (see :meth:`write_problem`)."""
        return self.write_problem() is None
