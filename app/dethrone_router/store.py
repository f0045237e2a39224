"""The durable config store: one SQLite file in WAL mode, shared by all workers.

Every gunicorn worker opens the same file, so a POST answered by one worker is
seen by the next GET on any other. An update runs in one ``BEGIN IMMEDIATE``
transaction (read, merge, validate, write config and history), so concurrent
updates are serialised by SQLite's write lock and none is lost or half-written.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
"""


class VersionConflict(Exception):
    """The update named a ``version`` that is no longer the current one."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"config version is {current}, not {expected}")
        self.expected, self.current = expected, current


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
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "router.sqlite3"
        self._local = threading.local()
        self._cache: tuple[int, dict[str, Any]] | None = None
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO config VALUES (1, 0, ?, ?)",
                         (json.dumps(defaults), _now()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and process: sqlite3 connections must not cross
        # a fork (gunicorn) nor be shared between threads (gthread workers).
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an acknowledged config change survives a power cut, not only a crash.
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def current(self) -> tuple[int, dict[str, Any]]:
        """The current ``(version, config)``; the config dict must not be mutated."""
        row = self._conn().execute("SELECT version, body FROM config WHERE id = 1").fetchone()
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
        """
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
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
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new_version, before, after

    def updated_at(self) -> str:
        """Time of the last change (or of the store's creation)."""
        return self._conn().execute("SELECT updated_at FROM config WHERE id = 1").fetchone()[0]

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Accepted changes, oldest first (the newest ``limit`` when given)."""
        sql = "SELECT version, at, before, after FROM history ORDER BY version DESC"
        rows = self._conn().execute(sql + (" LIMIT ?" if limit else ""),
                                    (limit,) if limit else ()).fetchall()
        return [{"version": v, "at": at, "before": json.loads(b), "after": json.loads(a)}
                for v, at, b, a in reversed(rows)]

    def writable(self) -> bool:
        """True when a write transaction can be opened right now."""
        try:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return os.access(self.directory, os.W_OK)
        except sqlite3.Error:
            return False
