"""SqlConfigStore: the seed-era ConfigStore's semantics, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from native_procs import free_port
from sqlalchemy import event

from dethrone.store import SqlConfigStore, StoreUnavailable, VersionConflict

DEFAULTS = {"a": 0.5, "b": 0.5, "data_size": 1000, "drift": {}, "seed": None}


@pytest.fixture
def store(engine) -> SqlConfigStore:
    return SqlConfigStore(engine, DEFAULTS)


def test_defaults_are_version_zero_without_history(store):
    assert store.current() == (0, DEFAULTS)
    assert store.history() == []
    assert store.updated_at().endswith("Z")


def test_update_returns_before_after_and_records_history(store):
    version, before, after = store.update(lambda c: {**c, "a": 0.3, "b": 0.7})
    assert (version, before, after) == (1, DEFAULTS, {**DEFAULTS, "a": 0.3, "b": 0.7})
    store.update(lambda c: {**c, "data_size": 10})
    assert store.current() == (2, {**DEFAULTS, "a": 0.3, "b": 0.7, "data_size": 10})
    hist = store.history()
    assert [h["version"] for h in hist] == [1, 2]
    assert hist[1]["before"] == hist[0]["after"]
    assert store.history(limit=1) == [hist[1]]
    assert store.updated_at() == hist[1]["at"]


def test_history_keeps_the_source_of_each_change(store):
    source = "live experiment live-v2-ab (run manual__1): start " + "x" * 206  # 256 chars
    store.update(lambda c: {**c, "a": 0.3, "b": 0.7}, source=source)
    store.update(lambda c: {**c, "a": 0.4, "b": 0.6})  # no source: null, as before
    store.update(lambda c: c, 2, source="ana")
    hist = store.history()
    assert [h["source"] for h in hist] == [source, None, "ana"]
    assert set(hist[0]) == {"version", "at", "before", "after", "source"}
    assert store.history(limit=1)[0]["source"] == "ana"
    with pytest.raises(ValueError, match="257 characters; at most 256"):
        store.update(lambda c: {**c, "a": 0.9, "b": 0.1}, source="x" * 257)
    assert store.current()[0] == 3 and len(store.history()) == 3


def test_second_store_on_same_database_keeps_the_config(db_url, store, new_engine):
    store.update(lambda c: {**c, "a": 0.1})
    other = SqlConfigStore(new_engine(db_url), {"a": 0.9})
    assert other.current() == (1, {**DEFAULTS, "a": 0.1})
    other.update(lambda c: {**c, "a": 0.2})
    assert store.current()[1]["a"] == 0.2


def test_version_precondition(store):
    store.update(lambda c: c, expected_version=0)
    with pytest.raises(VersionConflict) as info:
        store.update(lambda c: {**c, "a": 0.9}, expected_version=0)
    assert (info.value.expected, info.value.current) == (0, 1)
    assert store.current()[0] == 1 and len(store.history()) == 1


def test_failed_change_writes_nothing(store):
    def boom(cfg):
        raise ValueError("invalid")

    with pytest.raises(ValueError, match="invalid"):
        store.update(boom)
    assert store.current() == (0, DEFAULTS) and store.history() == []


def test_current_is_cached_until_the_version_changes(store):
    first = store.current()
    assert store.current()[1] is first[1]
    store.update(lambda c: {**c, "a": 0.4})
    assert store.current()[1] is not first[1]


def test_concurrent_updates_lose_nothing(db_url, store, new_engine):
    # Each thread has its own store (as each worker or replica does) and increments a counter.
    stores = [SqlConfigStore(new_engine(db_url), DEFAULTS) for _ in range(4)]
    errors: list[BaseException] = []

    def bump(s: SqlConfigStore) -> None:
        try:
            for _ in range(10):
                s.update(lambda c: {**c, "data_size": c["data_size"] + 1})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    version, cfg = store.current()
    assert (version, cfg["data_size"]) == (40, DEFAULTS["data_size"] + 40)
    assert [h["version"] for h in store.history()] == list(range(1, 41))


def test_writable(store):
    assert store.writable() is True


def test_read_only_sqlite_raises_typed_error(tmp_path, new_engine):
    path = tmp_path / "router.sqlite3"
    SqlConfigStore(new_engine(f"sqlite:///{path}"), DEFAULTS)
    ro = SqlConfigStore(new_engine(f"sqlite:///file:{path}?mode=ro&uri=true"), DEFAULTS)
    assert ro.current() == (0, DEFAULTS)
    assert ro.writable() is False
    with pytest.raises(StoreUnavailable, match="readonly"):
        ro.update(lambda c: {**c, "a": 0.1})


def test_full_sqlite_raises_typed_error_and_writes_nothing(tmp_path, new_engine):
    engine = new_engine(f"sqlite:///{tmp_path / 'router.sqlite3'}")
    store = SqlConfigStore(engine, DEFAULTS)

    @event.listens_for(engine, "checkout")
    def _full(dbapi_conn, *_):  # a disk with no page left
        pages = dbapi_conn.execute("PRAGMA page_count").fetchone()[0]
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    with pytest.raises(StoreUnavailable, match="full"):
        store.update(lambda c: {**c, "big": "x" * 200_000})
    event.remove(engine, "checkout", _full)
    assert store.current() == (0, DEFAULTS) and store.history() == []


def test_database_down_starts_serves_defaults_and_refuses_writes(new_engine):
    port = free_port()
    # A router must start while its database is down: reads get the defaults, writes a
    # typed error naming the store (password hidden) and the cause.
    store = SqlConfigStore(new_engine(f"postgresql://u:secret@127.0.0.1:{port}/x"), DEFAULTS)
    assert store.current() == (0, DEFAULTS)
    with pytest.raises(
        StoreUnavailable, match=f"config store .*:{port}/x cannot write: .*refused"
    ) as caught:
        store.update(lambda c: {**c, "a": 0.1})
    assert "secret" not in str(caught.value)
    assert store.writable() is False and "refused" in store.write_problem(max_age=0)
