"""Schema and migrations: created by the service, idempotent, safe when processes race."""

from __future__ import annotations

import subprocess
import sys

from alembic import command
from sqlalchemy import inspect, text

from dethrone.store import SqlConfigStore, current_revision, head_revision, upgrade
from dethrone.store.migrate import _config

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
        {
            "version": 1,
            "at": "2026-01-01T00:00:00.000Z",
            "before": {"a": 0.5},
            "after": {"a": 0.2},
            "source": None,
        }
    ]
    assert new.update(lambda c: {**c, "a": 0.3})[0] == 2


def _upgrade_to(engine, revision: str) -> None:
    """Migrate to an older ``revision`` (the database of an earlier dethrone)."""
    with engine.begin() as conn:
        command.upgrade(_config(conn), revision)


def test_history_of_0001_upgrades_to_head_with_its_rows(db_url, new_engine):
    engine = new_engine(db_url)
    _upgrade_to(engine, "0001")
    assert current_revision(engine) == "0001"
    assert "source" not in {c["name"] for c in inspect(engine).get_columns("history")}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO config (id, version, body, updated_at) "
                "VALUES (1, 2, '{\"a\": 0.3}', '2026-01-02T00:00:00.000Z')"
            )
        )
        for v, before, after in ((1, 0.5, 0.2), (2, 0.2, 0.3)):
            conn.execute(
                text("INSERT INTO history VALUES (:v, :at, :b, :a)"),
                {
                    "v": v,
                    "at": f"2026-01-0{v}T00:00:00.000Z",
                    "b": f'{{"a": {before}}}',
                    "a": f'{{"a": {after}}}',
                },
            )
    assert upgrade(new_engine(db_url)) == head_revision()
    store = SqlConfigStore(new_engine(db_url), {"a": 0.9})
    old = store.history()
    assert [(h["version"], h["after"], h["source"]) for h in old] == [
        (1, {"a": 0.2}, None),
        (2, {"a": 0.3}, None),
    ]
    assert store.current() == (2, {"a": 0.3})
    store.update(lambda c: {**c, "a": 0.4}, source="ana")
    assert store.history()[:2] == old and store.history()[-1]["source"] == "ana"
