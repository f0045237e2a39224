"""A look reduced in the database gives what the rows in memory give: the same outcome,
interval, figures and reasons, on SQLite and on PostgreSQL (marked integration)."""

from __future__ import annotations

import glob
import itertools
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import insert

from dethrone.experiments import analysis, sql_look
from dethrone.experiments.analysis import read_rows, take_look
from dethrone.experiments.look_table import reduce_frame
from dethrone.experiments.rules import decide, look, plan_look
from dethrone.experiments.sql_look import KeyCollision, reduce_in_database, supports
from dethrone.registry.records import LiveExperiment
from dethrone.settings import Settings
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions

ROOT = Path(__file__).resolve().parents[3]
# the stack's PostgreSQL start-up, as the store tests use it
sys.path.insert(0, str(ROOT / "scripts" / "stack"))
_names = itertools.count()
ARMS = [("champion", "1"), ("challenger", "2"), ("shadow", "2")]
NOW = 20_000.0


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    if not (glob.glob("/usr/lib/postgresql/*/bin/initdb") or shutil.which("initdb")):
        pytest.skip("PostgreSQL server binaries (initdb) not found: make ensure-postgres")
    from native_stack import Stack  # only when a PostgreSQL test runs (sys.path above)

    stack = Stack(tmp_path_factory.mktemp("pg"))
    stack.start_postgres()
    try:
        yield stack
    finally:
        stack.stop()


def _pg_url(stack) -> str:
    import psycopg  # the driver of the PostgreSQL tests only

    name = f"look{os.getpid()}_{next(_names)}"
    password, port = stack.creds.postgres_password, stack.ports.postgres
    with psycopg.connect(
        host="127.0.0.1", port=port, user="postgres", password=password, autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{port}/{name}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'log.sqlite3'}"
    else:
        url = _pg_url(request.getfixturevalue("pg_server"))
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _log(eng, n: int, seed: int, *, version_a="1", version_b="2", better=0.8) -> None:
    """n served rows in random order: sticky and unit-less rows, a few units in both arms,
    failed predictions, labels late, missing or not numbers, requests without a latency,
    rows of another salt. Times are distinct, as served times in seconds are: the two
    paths break a tie of first times between units alike only for the loss and coverage."""
    rng = np.random.default_rng(seed)
    b = rng.random(n) < 0.4
    ts = rng.uniform(100, 10_000, n)
    y = rng.normal(10, 3, n)
    pred = y + rng.normal(0, 1, n) * np.where(b, better, 1.0)
    rows, labels = [], []
    for i in rng.permutation(n):
        unit = None if rng.random() < 0.3 else f"u{rng.integers(0, n // 4)}"
        failed = rng.random() < 0.02
        rows.append(
            {
                "request_id": f"r{i}",
                "row": 0,
                "arm": "challenger" if b[i] else "champion",
                "served": True,
                "unit": unit,
                "model_version": version_b if b[i] else version_a,
                "salt": "other" if rng.random() < 0.03 else "s",
                "prediction": None if failed else float(pred[i]),
                "ts": float(ts[i]),
                "latency_ms": None if rng.random() < 0.1 else float(rng.lognormal(2, 0.5)),
            }
        )
        if rng.random() < 0.85:
            label: Any = "n/a" if rng.random() < 0.01 else float(y[i])
            late = rng.exponential(300)
            labels.append(
                {"request_id": f"r{i}", "row": 0, "label": label, "received_at": ts[i] + late}
            )
    with eng.begin() as conn:
        conn.execute(insert(predictions), rows)
        conn.execute(insert(feedback), labels)


def _rec(**kw) -> LiveExperiment:
    thresholds = {"label_window": "10m", "min_duration": "1s", "loss_unit": "units"}
    base: dict[str, Any] = dict(
        id="e",
        champion_version="1",
        challenger_version="2",
        salt="s",
        started_at=100.0,
        state="running",
        split=0.4,
        holdback=0.4,
        thresholds=thresholds,
    )
    return LiveExperiment(**{**base, **kw})


def _same(a: Any, b: Any, where: str = "") -> None:
    """Equal, floats to 1e-9 relative (a mean loss summed in another order)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (where, a, b)
    elif isinstance(a, str) and a != b and "mean absolute_error" in a:
        assert a.split(":")[0] == b.split(":")[0], where  # means shown to 4 digits
    else:
        assert a == b, (where, a, b)


def _both_paths(engine, rec: LiveExperiment, settings: Settings):
    plan = plan_look(rec, settings, now=NOW)
    assert supports(engine, plan)
    arms = analysis.phase_of(rec)[0]
    rows, _ = read_rows(engine, rec, arms, salts=(rec.salt,), loss=plan.thresholds["loss"])
    return look(rows, rec, settings, now=NOW), decide(reduce_in_database(engine, plan), plan)


@pytest.mark.parametrize("loss", ["absolute_error", "squared_error"])
def test_the_database_reduction_gives_the_look_in_memory(engine, loss):
    _log(engine, 3000, seed=1)
    rec = _rec(thresholds={**_rec().thresholds, "loss": loss})
    in_memory, in_database = _both_paths(engine, rec, Settings())
    assert in_database.outcome == in_memory.outcome
    assert in_database.units_in_both_arms > 0 and in_database.decision is not None
    assert in_database.ci_low == pytest.approx(in_memory.ci_low, rel=1e-12)
    assert in_database.ci_high == pytest.approx(in_memory.ci_high, rel=1e-12)
    _same(in_memory.to_dict(), in_database.to_dict())


def test_the_guardrail_phase_and_an_empty_arm_agree(engine):
    _log(engine, 2000, seed=2, version_a="2", version_b="1", better=1.0)
    rec = _rec(
        state="guardrail",
        window_until=9000.0,
        thresholds={**_rec().thresholds, "rollback_window": "2h"},
    )
    rec = LiveExperiment(**{**rec.__dict__, "salt": "s"})
    in_memory, in_database = _both_paths(engine, rec, Settings())
    assert in_database.phase == "guardrail"
    _same(in_memory.to_dict(), in_database.to_dict())
    lonely = _rec(challenger_version="9")  # no row on the challenger's version
    in_memory, in_database = _both_paths(engine, lonely, Settings())
    assert in_database.outcome == in_memory.outcome == "continue"
    _same(in_memory.to_dict(), in_database.to_dict())


def test_take_look_reduces_in_the_database_and_falls_back_for_classes(engine, monkeypatch):
    _log(engine, 1500, seed=3)
    rec = _rec(thresholds={"label_window": "10m", "min_duration": "1s"})
    settings = Settings(target="y")
    salted = analysis.phase_of(rec)[1]
    with engine.begin() as conn:  # take_look reads the gateway's salt of the experiment
        conn.execute(predictions.update().values(salt=salted))
    expected, _ = _both_paths(
        engine,
        LiveExperiment(
            **{
                **rec.__dict__,
                "salt": salted,
                "thresholds": {**rec.thresholds, "loss": "absolute_error", "loss_unit": "y units"},
            }
        ),
        settings,
    )

    def no_rows(*args, **kwargs):
        raise AssertionError("the rows were read into memory")

    monkeypatch.setattr(analysis, "read_rows", no_rows)
    result, frozen = take_look(engine, rec, settings, now=NOW)
    assert frozen["loss"] == "absolute_error" and frozen["loss_unit"] == "y units"
    _same(expected.to_dict(), result.to_dict())
    classes = LiveExperiment(
        **{**rec.__dict__, "thresholds": {**rec.thresholds, "loss": "zero_one_loss"}}
    )
    with pytest.raises(AssertionError, match="read into memory"):
        take_look(engine, classes, settings, now=NOW)


def test_reduce_frame_keeps_every_served_row_once(engine):
    _log(engine, 800, seed=4)
    rec = _rec()
    plan = plan_look(rec, Settings(), now=NOW)
    rows, _ = read_rows(engine, rec, ARMS, salts=("s",), loss="absolute_error")
    mem, db = reduce_frame(rows, plan), reduce_in_database(engine, plan)
    for table in (mem, db):
        assert table.groups["rows"].sum() == (rows["salt"] == "s").sum()
        want = ((rows["salt"] == "s") & rows["latency_ms"].notna()).sum()
        assert table.groups["latencies"].sum() == want
    assert np.allclose(
        np.sort(mem.groups["loss_sum"].to_numpy()), np.sort(db.groups["loss_sum"].to_numpy())
    )


@pytest.mark.parametrize("n", [0, 5, 33, 64, 1000, 12345])
@pytest.mark.parametrize("rare", [False, True])
def test_slow_requests_epoch_by_epoch_are_those_of_exceeds_reference(n, rare):
    from dethrone.abtest.live_checks import exceeds_reference as reference_checks
    from dethrone.experiments.look_table import exceeds_reference

    rng = np.random.default_rng(n)
    values = rng.lognormal(0, 1, n)
    if rare:  # the p99 is 0: the cap is the max
        values[rng.random(n) < 0.995] = 0.0
    reference = rng.random(n) < 0.3
    want, got = reference_checks(values, reference, 0.99), exceeds_reference(values, reference)
    assert (want[0] == got[0]).all() and (want[1] == got[1]).all()


@pytest.mark.parametrize("n", [1, 2, 3, 50, 99, 100, 101, 199, 1234, 99_999])
def test_the_quantile_from_its_two_neighbours_is_numpys(n):
    from dethrone.experiments.look_table import linear_quantile

    values = np.random.default_rng(n).lognormal(2, 1, n)
    for q in (0.5, 0.9, 0.99, 0.999):
        ordered = np.sort(values)
        below = int(np.floor((n - 1) * q))
        upper = ordered[min(below + 1, n - 1)]
        assert linear_quantile(ordered[below], upper, n, q) == np.quantile(values, q)


def _scope(engine, rec: LiveExperiment, now: float):
    from sqlalchemy import select

    from dethrone.store.schema import look_scopes

    plan = plan_look(rec, Settings(), now=now)
    with engine.connect() as conn:
        key = sql_look._scope_key(engine.dialect.name, plan)
        return conn.execute(select(look_scopes).where(look_scopes.c.key == key)).one()


def _agree(engine, rec: LiveExperiment, now: float):
    """The look at ``now`` through the kept sums equals the look on the rows in memory."""
    plan = plan_look(rec, Settings(), now=now)
    rows, _ = read_rows(engine, rec, ARMS, salts=(rec.salt,), loss=plan.thresholds["loss"])
    want = look(rows, rec, Settings(), now=now)
    got = decide(reduce_in_database(engine, plan), plan)
    _same(want.to_dict(), got.to_dict(), f"now={now}")
    return got


@pytest.mark.parametrize("label_window", [60.0, 600.0, 7200.0])
def test_looks_over_time_fold_each_row_once_and_agree_with_memory(engine, label_window):
    """Windows shorter and longer than the settling time: each look folds the served part
    of the rows up to ``now - SETTLE`` and their eligible part up to the label window
    before that, and reads the rest; every look equals the look on the rows in memory."""
    _log(engine, 4000, seed=6)
    thresholds = {**_rec().thresholds, "loss": "absolute_error", "label_window": label_window}
    rec = _rec(thresholds=thresholds)
    for now in (2000.0, 4500.0, 4500.0, 8000.0, 20_000.0):
        _agree(engine, rec, now)
        kept = _scope(engine, rec, now)
        assert kept.served_until == now - sql_look.SETTLE
        assert kept.closed_until == now - label_window - sql_look.SETTLE
    # a look dated before the watermark reads every row again (its sums hold rows that
    # are not final at that time) and leaves the kept sums as they are
    _agree(engine, rec, 5000.0)
    assert _scope(engine, rec, 5000.0).served_until == 20_000.0 - sql_look.SETTLE
    kept = _scope(engine, rec, 20_000.0)
    rows, _ = read_rows(engine, rec, ARMS, salts=("s",), loss="absolute_error")
    assert kept.requests == ((rows["salt"] == "s") & rows["latency_ms"].notna()).sum()
    assert set(map(int, kept.caps)) == {32 * 2**k for k in range(7)}


def test_the_arms_p99_comes_from_the_kept_tail_and_it_is_cut_anew(engine, monkeypatch):
    """The tail keeps about 2% of each arm's folded latencies; the p99 figures read it (no
    scan of the log) and equal numpy's; faster requests afterwards shrink its share below
    its bound, and the next fold cuts it anew."""
    monkeypatch.setattr(sql_look, "TAIL_FROM", 100)
    _log(engine, 4000, seed=10)
    rec = _rec(thresholds={**_rec().thresholds, "loss": "absolute_error"})
    _agree(engine, rec, 20_000.0)
    tail = _scope(engine, rec, 20_000.0).tail
    rows, _ = read_rows(engine, rec, ARMS, salts=("s",), loss="absolute_error")
    for arm, name in ((0, "champion"), (1, "challenger")):
        n = ((rows["arm"] == name) & rows["latency_ms"].notna() & (rows["salt"] == "s")).sum()
        assert 0.01 * n < tail[str(arm)]["count"] <= 0.04 * n
    scans = []
    real = sql_look._tail_sql

    def spy(*args, **kwargs):
        query, params = real(*args, **kwargs)
        scans.append("look_tail" not in query)
        return query, params

    monkeypatch.setattr(sql_look, "_tail_sql", spy)
    _agree(engine, rec, 20_000.0)
    assert scans == [False, False]  # both arms read from the tail
    fast = [  # 8,000 fast requests later: the floor holds under 1% of them
        {
            "request_id": f"f{i}",
            "row": 0,
            "arm": "champion" if i % 2 else "challenger",
            "served": True,
            "unit": None,
            "model_version": "1" if i % 2 else "2",
            "salt": "s",
            "prediction": 1.0,
            "ts": 20_000.0 + i * 0.1,
            "latency_ms": 0.5,
        }
        for i in range(8000)
    ]
    with engine.begin() as conn:
        conn.execute(insert(predictions), fast)
    _agree(engine, rec, 30_000.0)
    after = _scope(engine, rec, 30_000.0).tail
    assert after["0"]["floor"] < tail["0"]["floor"] and after["1"]["floor"] < tail["1"]["floor"]


def test_a_row_written_late_enters_the_next_look(engine):
    _log(engine, 1500, seed=7)
    rec = _rec(thresholds={**_rec().thresholds, "loss": "absolute_error"})
    before = _agree(engine, rec, 8000.0)
    late = {  # served long ago, logged now (a replay of the gateway's spool)
        "request_id": "late",
        "row": 0,
        "arm": "challenger",
        "served": True,
        "unit": "late-unit",
        "model_version": "2",
        "salt": "s",
        "prediction": 3.0,
        "ts": 500.0,
        "latency_ms": None,
    }
    with engine.begin() as conn:
        conn.execute(insert(predictions), [late])
        conn.execute(
            insert(feedback), [{"request_id": "late", "row": 0, "label": 2.0, "received_at": 510.0}]
        )
    after = _agree(engine, rec, 8000.0)
    assert after.arms[1].served_rows == before.arms[1].served_rows + 1
    _agree(engine, rec, 9000.0)  # folded once, not again


def test_caps_are_kept_once_the_requests_before_them_are_settled(engine):
    _log(engine, 3000, seed=8)
    rec = _rec(thresholds={**_rec().thresholds, "loss": "absolute_error"})
    _agree(engine, rec, 1000.0)  # hardly any row is settled: caps are computed, not kept
    early = set(map(int, _scope(engine, rec, 1000.0).caps))
    _agree(engine, rec, 20_000.0)
    late = set(map(int, _scope(engine, rec, 20_000.0).caps))
    assert early < late and 1024 in late and 1024 not in early


def test_looks_at_once_fold_each_row_once(engine):
    import threading

    _log(engine, 2000, seed=9)
    rec = _rec(thresholds={**_rec().thresholds, "loss": "absolute_error"})
    plan = plan_look(rec, Settings(), now=9000.0)
    tables, errors = [], []
    start = threading.Barrier(3)

    def one() -> None:
        try:
            start.wait()
            tables.append(reduce_in_database(engine, plan))
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    want = _agree(engine, rec, 9000.0)
    for table in tables:
        _same(want.to_dict(), decide(table, plan).to_dict())


def test_units_sharing_a_key_hash_are_read_in_memory(engine, monkeypatch):
    _log(engine, 500, seed=5)
    rec = _rec(thresholds={"label_window": "10m", "min_duration": "1s", "loss": "absolute_error"})
    salted = analysis.phase_of(rec)[1]
    with engine.begin() as conn:
        conn.execute(predictions.update().values(salt=salted))
    want, _ = take_look(engine, rec, Settings(), now=NOW)
    monkeypatch.setitem(sql_look._KEY, engine.dialect.name, "0")  # every unit one hash
    view = LiveExperiment(**{**rec.__dict__, "salt": salted})
    with pytest.raises(KeyCollision):
        reduce_in_database(engine, plan_look(view, Settings(), now=NOW))
    got, _ = take_look(engine, rec, Settings(), now=NOW)
    _same(want.to_dict(), got.to_dict())
