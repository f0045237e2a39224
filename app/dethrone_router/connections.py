"""Per-thread SQLite connections that fall back to read-only and recover by themselves.

The config store reads on every request. When the file cannot be opened for writing
(read-only file system, permissions taken away) a read-only connection serves the
reads; every :data:`RETRY_SECONDS` (and before every write) read-write is tried again,
so the store recovers without a restart when access returns.

SQLite shares one WAL index (``-shm``) mapping between all connections of a process. A
connection opened while the index was read-only leaves it read-only for every later
connection of the process as long as it stays open, so leaving the read-only state
closes the connections of all threads (:meth:`Connections.drop_all`); each is used
under its own lock, so none is closed while another thread is in a statement.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: Seconds a read-only fallback connection is used before read-write is tried again.
RETRY_SECONDS = 1.0


@dataclass(eq=False)
class _Entry:
    conn: sqlite3.Connection
    readonly: bool
    opened: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False

    def close(self) -> None:
        self.closed = True
        try:
            self.conn.close()
        except sqlite3.Error:
            pass


class Connections:
    """Connections to the SQLite file ``path``, one per thread (and per process: a
    connection must not cross gunicorn's fork)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._guard = threading.Lock()
        self._entries: set[_Entry] = set()
        self._pid = os.getpid()

    @contextmanager
    def use(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """This thread's connection, held for the block; ``write`` insists on read-write.

        Raises
        ------
        sqlite3.Error
            When no connection of the kind asked for can be opened.
        """
        while True:
            entry = self._entry(write)
            with entry.lock:
                if not entry.closed:  # else closed by drop_all in between: open anew
                    yield entry.conn
                    return

    def drop(self) -> None:
        """Close this thread's connection, so the next use opens a fresh one."""
        entry = getattr(self._local, "entry", None)
        self._local.entry = None
        if entry is not None and self._pid == os.getpid():
            with self._guard:
                self._entries.discard(entry)
            with entry.lock:
                entry.close()

    def drop_all(self) -> None:
        """Close the connections of every thread of this process."""
        with self._guard:
            entries, self._entries = list(self._entries), set()
        for entry in entries:
            with entry.lock:
                entry.close()
        self._local.entry = None

    def _entry(self, write: bool) -> _Entry:
        if self._pid != os.getpid():  # forked: the parent's connections are not ours
            self._pid, self._entries, self._local = os.getpid(), set(), threading.local()
        entry = getattr(self._local, "entry", None)
        if entry is not None and entry.closed:
            entry = None
        if entry is not None and entry.readonly and (
                write or time.monotonic() - entry.opened > RETRY_SECONDS):
            self.drop_all()
            entry = None
        if entry is None:
            entry = self._open(write)
            with self._guard:
                self._entries.add(entry)
            self._local.entry = entry
        return entry

    def _open(self, write: bool) -> _Entry:
        try:
            conn = self._connect(readonly=False)
            # SQLite opens a file it may not write read-only without a word; such a
            # connection must count as read-only, to be retried (and closed) later.
            if os.access(self.path, os.W_OK) or not self.path.exists():
                return _Entry(conn, readonly=False)
            conn.close()
            if write:
                raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.Error:
            if write or not self.path.exists():
                raise
        return _Entry(self._connect(readonly=True), readonly=True)

    def _connect(self, readonly: bool) -> sqlite3.Connection:
        if not readonly:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # FULL: an acknowledged config change survives a power cut, not only a crash.
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:
                conn.close()
                raise
            return conn
        uri = self.path.as_uri()
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30.0,
                                   isolation_level=None, check_same_thread=False)
            conn.execute("SELECT 1 FROM config").fetchone()
            return conn
        except sqlite3.Error:
            # On a read-only file system without the WAL index nobody can write the
            # file, so reading it as immutable is exact (and retried after a second).
            conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("SELECT 1 FROM config").fetchone()
            return conn
