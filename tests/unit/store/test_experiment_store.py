"""The experiment page's store: upserts, looks, incremental counts, and the lifecycle hooks."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from dethrone.experiments import state as exp_state
from dethrone.registry.records import LiveExperiment, Look
from dethrone.store import experiments as store
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}")
    upgrade(eng)
    store._memo.clear()
    yield eng
    eng.dispose()


def test_upsert_keeps_every_action_once(engine):
    rec = {"id": "e1", "state": "running", "started_at": 1.0, "champion_version": "1"}
    a1 = {"action": "start", "by": "ann", "reason": "r", "at": 1.0}
    a2 = {"action": "stop", "by": "bob", "reason": "s", "at": 2.0}
    store.save_experiment(engine, {**rec, "action": a1})
    store.save_experiment(engine, {**rec, "action": a1, "looks": 1})
    store.save_experiment(engine, {**rec, "state": "stopped", "action": a2})
    got = store.experiment(engine, "e1")
    assert got["state"] == "stopped" and got["actions"] == [a1, a2]
    assert store.experiment(engine, "nope") is None


def test_looks_numbered_and_replaced(engine):
    store.save_look(engine, "e1", {"time": 1.0, "phase": "experiment", "outcome": "continue"})
    store.save_look(engine, "e1", {"time": 2.0, "phase": "experiment", "outcome": "continue"})
    store.save_look(engine, "e1", {"time": 2.5, "phase": "experiment", "outcome": "keep"}, 2)
    got = store.looks(engine, "e1")
    assert [(g["number"], g["outcome"]) for g in got] == [(1, "continue"), (2, "keep")]


def test_counts_are_incremental_and_exact(engine):
    store.save_experiment(engine, {"id": "e1", "state": "running", "started_at": 100.0})

    def log(i, ts, arm, labelled_at=None):
        row = {
            "request_id": f"r{i}",
            "row": 0,
            "arm": arm,
            "served": True,
            "ts": ts,
            "model_version": "1" if arm == "champion" else "2",
        }
        with engine.begin() as conn:
            conn.execute(insert(predictions), [row])
            if labelled_at is not None:
                conn.execute(
                    insert(feedback),
                    [{"request_id": f"r{i}", "row": 0, "label": 1, "received_at": labelled_at}],
                )

    log(0, 50.0, "champion", 60.0)  # before the start: not counted
    for i in range(1, 11):
        log(i, 100.0 + i, "champion" if i % 2 else "challenger", 200.0 + i if i < 7 else None)
    store.refresh_counts(engine, "e1", now=1000.0)
    store._memo.clear()  # a fresh worker starts from the stored state
    log(11, 990.0, "challenger", 995.0)  # after the settled point: in the tail
    rows, _ = store.arm_counts(engine, "e1", since=100.0, now=1001.0)
    by = {r["arm"]: (r["rows"], r["labelled"]) for r in rows}
    assert by == {"champion": (5, 3), "challenger": (6, 4)}
    rows, _ = store.arm_counts(engine, "e1", since=100.0, now=1002.0)  # memo: same answer
    assert {r["arm"]: (r["rows"], r["labelled"]) for r in rows} == by


class _Ctx:
    def __init__(self, engine):
        self.engine, self.clock = engine, lambda: 500.0


class _Broken:
    def connect(self):
        raise RuntimeError("database gone")


def test_lifecycle_hooks_write_and_never_raise(engine):
    rec = LiveExperiment(
        id="e2",
        champion_version="1",
        challenger_version="2",
        started_at=100.0,
        state="running",
        looks=0,
    )
    exp_state.page_record(_Ctx(engine), rec)
    exp_state.page_look(_Ctx(engine), rec, Look(time=400.0, outcome="continue"))
    assert store.experiment(engine, "e2")["state"] == "running"
    assert store.looks(engine, "e2")[0]["number"] == 1
    before = dict(exp_state.PAGE_WRITE_FAILURES)
    exp_state.page_record(_Ctx(_Broken()), rec)
    exp_state.page_look(_Ctx(_Broken()), rec, Look(time=400.0))
    assert exp_state.PAGE_WRITE_FAILURES == {
        "record": before["record"] + 1,
        "look": before["look"] + 1,
    }
