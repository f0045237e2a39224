"""Bring the database to the newest schema, safely when several processes start at once.

Every router worker and replica calls :func:`upgrade` on start. The first one to take the
lock migrates; the others wait for it, then find nothing left to do. The lock is a
PostgreSQL advisory lock (held by the session, released on disconnect, so a crashed process
cannot leave it behind) or, on SQLite, the database's own write lock (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from dethrone.store.engine import IMMEDIATE
from dethrone.store.errors import unavailable_as_typed

_SCRIPTS = Path(__file__).resolve().parent / "migrations"
# Any fixed 64-bit number works; this one is "dethrone" in ASCII, so it will not collide
# with another application's advisory lock by accident.
_LOCK_KEY = int.from_bytes(b"dethrone", "big") & 0x7FFF_FFFF_FFFF_FFFF


def _config(conn: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPTS))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of dethrone."""
    head = ScriptDirectory(str(_SCRIPTS)).get_current_head()
    if head is None:  # only a tree without revisions has none (or several: alembic raises)
        raise RuntimeError(f"no alembic revision in {_SCRIPTS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with unavailable_as_typed(), engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> str:
    """Migrate to the newest revision under a lock; returns it.

    Raises
    ------
    StoreUnavailable
        When the database cannot be reached or written.

    Examples
    --------
    >>> from dethrone.store.engine import make_engine
    >>> upgrade(make_engine("sqlite://")) == head_revision()
    True
    """
    with unavailable_as_typed(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            conn.commit()
            try:
                command.upgrade(_config(conn), "head")
                conn.commit()
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
        else:
            conn.execution_options(**{IMMEDIATE: True})
            with conn.begin():
                command.upgrade(_config(conn), "head")
    return head_revision()
