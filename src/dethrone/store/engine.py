"""Engines for the router's database: one URL, SQLite file by default, PostgreSQL in compose.

SQLite gets WAL (readers never wait for the writer), a busy timeout (writers queue instead of
failing) and ``synchronous=FULL`` (a committed row survives a power cut, not only a crash).
Its transactions are opened by us rather than by the driver, so a write transaction can
take the write lock up front (``BEGIN IMMEDIATE``): two read-then-write transactions then
queue instead of failing with "database is locked" at the upgrade.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

#: execution option that makes an SQLite transaction take the write lock when it begins
IMMEDIATE = "dethrone_immediate"
_BUSY_TIMEOUT_MS = 30_000


def default_url(data_dir: str | os.PathLike) -> str:
    """The embedded default, the seed-era store's file: ``<data_dir>/router.sqlite3``.

    >>> default_url("/tmp/r")
    'sqlite:////tmp/r/router.sqlite3'
    """
    return f"sqlite:///{Path(data_dir).absolute() / 'router.sqlite3'}"


def database_url(settings: Any) -> str:
    """``ROUTER_DATABASE_URL``, or the SQLite file under ``ROUTER_DATA_DIR`` when empty."""
    return settings.router_database_url or default_url(settings.router_data_dir)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings this package relies on.

    Parameters
    ----------
    url : str
        ``sqlite:///path`` or ``postgresql+psycopg://user:pw@host:port/db``; a bare
        ``postgresql://`` is given the psycopg 3 driver.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine`.

    Examples
    --------
    >>> engine = make_engine("sqlite://")
    >>> engine.dialect.name
    'sqlite'
    """
    parsed = make_url(url)
    kwargs.setdefault("json_serializer", _json_dumps)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", _BUSY_TIMEOUT_MS / 1000)
        if parsed.database in (None, "", ":memory:"):
            # One in-memory database for every thread of the process (tests, doctests).
            kwargs.setdefault("poolclass", StaticPool)
            kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = create_engine(parsed, **kwargs)
        _sqlite_events(engine)
        return engine
    # pre-ping: after a database restart, pooled connections are dead; test before use.
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", 5)
    return create_engine(parsed, **kwargs)


def _json_dumps(value: Any) -> str:
    # Models answer with numpy scalars and arrays; the json module refuses them.
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record) -> None:
        # Take transaction control away from the driver (SQLAlchemy's documented recipe).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        if engine.url.database and engine.url.database != ":memory:":
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        immediate = conn.get_execution_options().get(IMMEDIATE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the write lock from its first statement.

    On SQLite that is ``BEGIN IMMEDIATE``; PostgreSQL locks rows as they are touched.
    """
    with engine.connect() as conn:
        conn.execution_options(**{IMMEDIATE: True})
        with conn.begin():
            yield conn


def sqlite_folder(engine: Engine) -> Path | None:
    """The folder of an SQLite file database (``None`` otherwise)."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    return Path(engine.url.database).absolute().parent
