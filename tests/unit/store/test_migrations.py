"""Schema and migrations: created by the service, idempotent, safe when processes race."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect

from dethrone.store import current_revision, head_revision, upgrade

TABLES = {"config", "history", "predictions", "feedback", "alembic_version"}


def test_upgrade_creates_every_table_and_is_idempotent(db_url, new_engine):
    engine = new_engine(db_url)
    assert current_revision(engine) is None
    assert upgrade(engine) == head_revision()
    assert upgrade(engine) == head_revision()
    assert TABLES <= set(inspect(engine).get_table_names())
    assert current_revision(engine) == head_revision()


def test_concurrent_starts_migrate_once(db_url, new_engine):
    # Five processes start at once, as gunicorn workers and replicas do.
    code = (
        "import sys; from dethrone.store import make_engine, upgrade; "
        "print(upgrade(make_engine(sys.argv[1])))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(5)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 5, [err for _, err in outs]
    assert {out.strip() for out, _ in outs} == {head_revision()}
    assert TABLES <= set(inspect(new_engine(db_url)).get_table_names())


def test_seed_era_file_is_adopted_with_its_config(tmp_path, new_engine):
    import sqlite3

    from dethrone.store import SqlConfigStore, default_url

    # The file as the seed-era dethrone_router.store.ConfigStore left it (its schema).
    seed = sqlite3.connect(tmp_path / "router.sqlite3")
    seed.executescript("""
        CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL,
                             body TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE history (version INTEGER PRIMARY KEY, at TEXT NOT NULL,
                              before TEXT NOT NULL, after TEXT NOT NULL);
        CREATE TABLE probe (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
        INSERT INTO config VALUES (1, 1, '{"a": 0.2}', '2026-01-01T00:00:00.000Z');
        INSERT INTO history VALUES (1, '2026-01-01T00:00:00.000Z', '{"a": 0.5}', '{"a": 0.2}');
    """)
    seed.close()
    new = SqlConfigStore(new_engine(default_url(tmp_path)), {"a": 0.9})
    assert new.current() == (1, {"a": 0.2})
    assert new.history() == [
        {"version": 1, "at": "2026-01-01T00:00:00.000Z", "before": {"a": 0.5}, "after": {"a": 0.2}}
    ]
    assert new.update(lambda c: {**c, "a": 0.3})[0] == 2
