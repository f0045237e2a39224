"""Databases for the store tests: an SQLite file, and a real PostgreSQL (marked integration).

The PostgreSQL server is the native stack's own (scripts/stack/native_stack.py,
``Stack.start_postgres``): Debian's binaries, a private cluster in a temporary folder, a
free port on 127.0.0.1, stopped by PID at the end of the session. Every test gets a fresh
database, so tests stay independent of their order.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
# Reused, not copied: the stack test's process helpers and PostgreSQL start-up.
sys.path.insert(0, str(ROOT / "scripts" / "stack"))
_names = itertools.count()


class PgServer:
    """The stack's PostgreSQL, with stop and restart for outage tests."""

    def __init__(self, tmp: Path) -> None:
        from native_stack import Stack

        self.stack = Stack(tmp)
        self.stack.start_postgres()
        self.port = self.stack.ports.postgres
        self.password = self.stack.creds.postgres_password

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _proc(self):
        return next(p for p in reversed(self.stack.procs.started) if p.name == "postgres")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the port closes."""
        proc = self._proc()
        proc.popen.send_signal(signal.SIGINT)
        proc.popen.wait(timeout=30)

    def start(self) -> None:
        """Start the stopped server again on the same port and data folder."""
        from native_procs import port_open, wait_until

        old = self._proc()
        user = "postgres" if os.geteuid() == 0 else None
        proc = self.stack.procs.spawn(
            "postgres",
            list(old.popen.args),
            {**self.stack.base_env(), "LC_ALL": "C.UTF-8"},
            user=user,
            cwd=self.stack._pgdir,
            stop_signal=signal.SIGINT,
            stop_timeout=20,
        )
        wait_until("postgres", port_open(self.port), timeout=60, proc=proc)
        # The port opens a moment before logins are accepted: wait for a login, not a guess.
        wait_until("postgres login", self._login, timeout=60, proc=proc)

    def _login(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host="127.0.0.1",
                port=self.port,
                user="postgres",
                password=self.password,
                dbname="postgres",
                connect_timeout=5,
            ):
                return True
        except psycopg.OperationalError:
            return False


def _have_initdb() -> bool:
    import glob
    import shutil

    return bool(glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb"))


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    if not _have_initdb():
        pytest.skip(
            "PostgreSQL server binaries (initdb) not found: run scripts/stack/ensure-postgres.sh"
        )
    server = PgServer(tmp_path_factory.mktemp("pg"))
    try:
        yield server
    finally:
        server.stack.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request, tmp_path) -> str:
    """URL of a fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'router.sqlite3'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def engine(db_url):
    """A migrated engine on :func:`db_url`."""
    from dethrone.store import make_engine, upgrade

    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def new_engine():
    """``new_engine(url)``: more engines on a database (as other workers have), disposed after."""
    from dethrone.store import make_engine

    made = []

    def make(url: str):
        made.append(make_engine(url))
        return made[-1]

    yield make
    for eng in made:
        eng.dispose()
