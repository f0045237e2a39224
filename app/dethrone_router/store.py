"""The durable config store: one SQLite file in WAL mode, shared by all workers.

Every gunicorn worker opens the same file, so a POST answered by one worker is
seen by the next GET on any other. An update runs in one ``BEGIN IMMEDIATE``
transaction (read, merge, validate, write config and history), so concurrent
updates are serialised by SQLite's write lock and none is lost or half-written.

Faults of the disk are answered, not crashed on: when the folder is full or
read-only, reads go on (through a read-only connection, else from the last config
this process read), writes raise :class:`StoreUnavailable` naming the store and the
cause, and every later call tries the read-write path again, so service resumes by
itself when space or access returns.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dethrone_router.connections import Connections

log = logging.getLogger("dethrone_router")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    version INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
"""


class VersionConflict(Exception):
    """The update named a ``version`` that is no longer the current one."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"config version is {current}, not {expected}")
        self.expected, self.current = expected, current


class StoreUnavailable(Exception):
    """The store cannot do ``action`` ("read" or "write") now; ``cause`` says why."""

    def __init__(self, path: Path, action: str, cause: str) -> None:
        super().__init__(f"config store {path} cannot {action}: {cause}")
        self.path, self.action, self.cause = path, action, cause


def _cause(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", None):
        return f"{exc} ({exc.sqlite_errorname})"
    return str(exc) or type(exc).__name__


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite ends the transaction itself on SQLITE_FULL and some I/O errors; a ROLLBACK
    # then fails and would hide the real cause.
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConfigStore:
    """Config and history in ``<directory>/router.sqlite3``.

    Parameters
    ----------
    directory : str or Path
        Created if missing.
    defaults : dict
        The config stored as version 0 when the file is new (no history entry).
    """

    def __init__(self, directory: str | Path, defaults: dict[str, Any]) -> None:
        self.directory = Path(directory).resolve()
        self.path = self.directory / "router.sqlite3"
        self.defaults = defaults
        self._db = Connections(self.path)
        self._cache: tuple[int, dict[str, Any]] | None = None
        self._probe: tuple[float, str | None] = (-1e9, None)
        self._ready = False
        try:
            self._ensure_schema()
        except StoreUnavailable as exc:
            # A worker must start on a full or read-only disk too: it serves reads.
            log.warning("%s; serving reads only until it can", exc)

    # ------------------------------------------------------------------ connections
    def _ensure_schema(self) -> None:
        if self._ready:
            return
        self._check_access()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(self.path, "write", _cause(exc)) from exc

        def create(conn: sqlite3.Connection) -> None:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO config VALUES (1, 0, ?, ?)",
                         (json.dumps(self.defaults), _now()))

        self._write(create)
        self._ready = True

    def _check_access(self) -> None:
        """Refuse a write up front when the OS says it cannot work: an already open
        SQLite file stays writable through its descriptor after a chmod, and a write
        accepted then would contradict /health."""
        target = self.path if self.path.exists() else self.directory
        while not target.exists() and target != target.parent:
            target = target.parent
        if not os.access(target, os.W_OK) or (
                target == self.path and not os.access(self.directory, os.W_OK)):
            raise StoreUnavailable(self.path, "write", f"no write access to {target} "
                                                       f"(read-only)")

    def _read(self, sql: str, params: tuple = ()) -> list[tuple]:
        for attempt in (1, 2):
            try:
                with self._db.use() as conn:
                    return conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                self._db.drop()
                if attempt == 2:
                    raise StoreUnavailable(self.path, "read", _cause(exc)) from exc
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ API
    def current(self) -> tuple[int, dict[str, Any]]:
        """The current ``(version, config)``; the config dict must not be mutated.

        When the file cannot be read the last config this process read is served
        (the defaults when the file was never created).
        """
        try:
            row = self._read("SELECT version, body FROM config WHERE id = 1")[0]
        except (StoreUnavailable, IndexError):
            if self._cache is not None:
                return self._cache
            if not self.path.exists():
                return 0, self.defaults
            raise
        version = int(row[0])
        cached = self._cache
        if cached is None or cached[0] != version:
            cached = (version, json.loads(row[1]))
            self._cache = cached
        return cached

    def update(self, change: Callable[[dict[str, Any]], dict[str, Any]],
               expected_version: int | None = None) -> tuple[int, dict, dict]:
        """Atomically replace the config by ``change(current)``.

        Parameters
        ----------
        change : callable
            Gets the current config, returns the new one; may raise to abort.
        expected_version : int, optional
            Abort with :class:`VersionConflict` unless this is the current version.

        Returns
        -------
        tuple
            ``(new_version, before, after)``.

        Raises
        ------
        StoreUnavailable
            When the file cannot be written (full, read-only, I/O error); nothing changed.
        """
        self._ensure_schema()
        self._check_access()

        def apply(conn: sqlite3.Connection) -> tuple[int, dict, dict]:
            version, body = conn.execute(
                "SELECT version, body FROM config WHERE id = 1").fetchone()
            if expected_version is not None and expected_version != version:
                raise VersionConflict(expected_version, version)
            before = json.loads(body)
            after = change(before)
            new_version, at = version + 1, _now()
            conn.execute("UPDATE config SET version = ?, body = ?, updated_at = ? WHERE id = 1",
                         (new_version, json.dumps(after), at))
            conn.execute("INSERT INTO history VALUES (?, ?, ?, ?)",
                         (new_version, at, json.dumps(before), json.dumps(after)))
            return new_version, before, after

        return self._write(apply)

    def _write(self, apply: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``apply`` in one ``BEGIN IMMEDIATE`` transaction and commit it.

        A failed attempt is retried once after closing every connection of the process:
        one opened while the file was read-only keeps the WAL index read-only for all.
        """
        for attempt in (1, 2):
            try:
                with self._db.use(write=True) as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = apply(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        _rollback(conn)
                        raise
                return result
            except sqlite3.Error as exc:
                self._db.drop_all()
                if attempt == 2:
                    raise StoreUnavailable(self.path, "write", _cause(exc)) from exc
        raise AssertionError("unreachable")

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted changes, oldest first (the newest ``limit`` when given)."""
        sql = "SELECT version, at, before, after FROM history ORDER BY version DESC"
        rows = self._read(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [{"version": v, "at": at, "before": json.loads(b), "after": json.loads(a)}
                for v, at, b, a in reversed(rows)]

    def write_problem(self, *, max_age: float = 1.0) -> str | None:
        """None when a real write succeeds right now, else why not.

        The probe commits one row (so it needs the space and access a config change
        needs); its answer is reused for ``max_age`` seconds, so health probes cannot
        turn into a stream of fsyncs.
        """
        at, problem = self._probe
        if time.monotonic() - at < max_age:
            return problem
        try:
            self._ensure_schema()
            self._check_access()
            self.update_probe()
            problem = None
        except StoreUnavailable as exc:
            problem = str(exc)
        self._probe = (time.monotonic(), problem)
        return problem

    def update_probe(self) -> None:
        """Commit one probe row, the way a config change is committed."""
        self._write(lambda conn: conn.execute("INSERT OR REPLACE INTO probe VALUES (1, ?)",
                                              (_now(),)))

    def writable(self) -> bool:
        """True when a write can be committed right now (see :meth:`write_problem`)."""
        return self.write_problem() is None
