"""Gauges of the running experiment (dethrone_router.metrics.experiment) on a real database."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import insert

from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions
from dethrone_router.metrics.experiment import ExperimentCollector, split_of
from tests.api.test_serving import FakeSource, _fit

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "1/-/-", "1/2/s:v2"


class FakeStore:
    """The config store's ``current()``; ``down`` makes it fail like an unreadable database."""

    def __init__(self, **cfg) -> None:
        self.cfg = {"mode": "ab", "a": 0.7, "b": 0.3, **cfg}
        self.down = False

    def current(self):
        if self.down:
            raise ConnectionError("store down")
        return 3, self.cfg


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    # The store tests' PostgreSQL (the native stack's), loaded from their conftest.
    path = ROOT / "tests" / "unit" / "store" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_store_conftest", path)
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    if not conftest._have_initdb():
        pytest.skip("PostgreSQL server binaries (initdb) not found")
    server = conftest.PgServer(tmp_path_factory.mktemp("pg"))
    try:
        yield server
    finally:
        server.stack.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'router.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


def _row(i, experiment, arm, ts, prediction, unit=None, served=True):
    return {
        "request_id": f"r{i}",
        "row": 0,
        "arm": arm,
        "served": served,
        "unit": unit,
        "experiment_id": experiment,
        "ts": ts,
        "prediction": prediction,
    }


def _fill(engine) -> None:
    """Two experiments; the newer one's hand-computed numbers are in the tests below."""
    rows = [
        _row(0, OLD, "champion", 100.0, 50.0, "u0"),  # older experiment: loss 40
        _row(1, NEW, "champion", 200.0, 10.0, "u1"),  # |10 - 12| = 2
        _row(2, NEW, "champion", 201.0, 5.0, "u1"),  # |5 - 4| = 1
        _row(3, NEW, "champion", 202.0, 3.0, "u2"),
        _row(4, NEW, "champion", 203.0, 7.0, None),  # no unit: not a distinct unit
        _row(5, NEW, "challenger", 204.0, 8.0, "u3"),  # |8 - 4| = 4
        _row(6, NEW, "challenger", 205.0, 2.0, "u4"),
        # newest, but unserved: does not name the running experiment
        _row(7, "7/8/-", "challenger", 300.0, 1.0, "u9", served=False),
    ]
    labels = {"r0": 10.0, "r1": 12.0, "r2": 4.0, "r5": 4.0}
    with engine.begin() as conn:
        conn.execute(insert(predictions), rows)
        conn.execute(
            insert(feedback),
            [
                {"request_id": r, "row": 0, "label": y, "received_at": 1.0}
                for r, y in labels.items()
            ],
        )


def _samples(collector) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collector.collect()
        for s in family.samples
    }


def _per_arm(samples, name) -> dict[str, float]:
    out = {}
    for (metric, labels), value in samples.items():
        if metric == name:
            found = dict(labels)
            assert found["experiment"] == NEW
            out[found["arm"]] = value
    return out


def test_the_newest_served_experiment_is_reported_per_arm(engine):
    _fill(engine)
    samples = _samples(ExperimentCollector(engine, FakeStore()))
    info = {k: v for k, v in samples.items() if k[0] == "dethrone_experiment_info"}
    assert info == {
        (
            "dethrone_experiment_info",
            (
                ("challenger_version", "2"),
                ("champion_version", "1"),
                ("experiment", NEW),
                ("mode", "ab"),
            ),
        ): 1.0
    }
    assert _per_arm(samples, "dethrone_experiment_split") == {"champion": 0.7, "challenger": 0.3}
    assert _per_arm(samples, "dethrone_experiment_rows") == {"champion": 4, "challenger": 2}
    assert _per_arm(samples, "dethrone_experiment_units") == {"champion": 2, "challenger": 2}
    assert _per_arm(samples, "dethrone_experiment_labelled_rows") == {
        "champion": 2,
        "challenger": 1,
    }
    loss = _per_arm(samples, "dethrone_experiment_loss")
    assert loss == pytest.approx({"champion": 1.5, "challenger": 4.0}, rel=1e-12)


def test_the_loss_uses_the_newest_labelled_rows_only(engine):
    _fill(engine)
    samples = _samples(ExperimentCollector(engine, FakeStore(), loss_rows=1))
    # champion's newest labelled row is r2 (|5 - 4|), not r1
    assert _per_arm(samples, "dethrone_experiment_loss") == {"champion": 1.0, "challenger": 4.0}


def test_an_arm_without_labels_has_counts_but_no_loss(engine):
    with engine.begin() as conn:
        conn.execute(insert(predictions), [_row(1, NEW, "challenger", 1.0, 3.0, "u1")])
    samples = _samples(ExperimentCollector(engine, FakeStore()))
    assert _per_arm(samples, "dethrone_experiment_rows") == {"challenger": 1}
    assert _per_arm(samples, "dethrone_experiment_labelled_rows") == {"challenger": 0}
    assert _per_arm(samples, "dethrone_experiment_loss") == {}


def test_shadow_predictions_count_for_the_challenger(engine):
    with engine.begin() as conn:
        conn.execute(
            insert(predictions),
            [
                {**_row(1, NEW, "champion", 1.0, 3.0, "u1"), "row": 0},
                {**_row(1, NEW, "challenger", 1.0, 6.0, "u1", served=False), "row": 0},
            ],
        )
        conn.execute(
            insert(feedback), [{"request_id": "r1", "row": 0, "label": 4.0, "received_at": 1.0}]
        )
    samples = _samples(ExperimentCollector(engine, FakeStore(mode="shadow")))
    assert _per_arm(samples, "dethrone_experiment_split") == {"champion": 1.0, "challenger": 0.0}
    assert _per_arm(samples, "dethrone_experiment_loss") == {"champion": 1.0, "challenger": 2.0}


@pytest.mark.parametrize(
    ("mode", "has_challenger", "expected"),
    [
        ("ab", True, {"champion": 0.7, "challenger": 0.3}),
        ("shadow", True, {"champion": 1.0, "challenger": 0.0}),
        ("champion", True, {"champion": 1.0, "challenger": 0.0}),
        ("champion", False, {"champion": 1.0}),
        ("ab", False, {"champion": 1.0}),  # no challenger loaded: the champion served all
    ],
)
def test_split_per_mode(mode, has_challenger, expected):
    assert split_of(mode, {"a": 0.7, "b": 0.3}, has_challenger=has_challenger) == expected


def test_champion_mode_reports_no_challenger(engine):
    with engine.begin() as conn:
        conn.execute(insert(predictions), [_row(1, OLD, "champion", 1.0, 3.0, "u1")])
    samples = _samples(ExperimentCollector(engine, FakeStore(mode="champion")))
    labels = dict(next(k[1] for k in samples if k[0] == "dethrone_experiment_info"))
    assert (labels["mode"], labels["challenger_version"]) == ("champion", "-")
    split = {dict(k[1])["arm"]: v for k, v in samples.items() if k[0].endswith("_split")}
    assert split == {"champion": 1.0}


def test_no_served_row_yet_means_no_series(engine):
    assert _samples(ExperimentCollector(engine, FakeStore())) == {}


def test_a_broken_database_yields_no_series_and_no_error(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")  # not migrated: no tables
    collector = ExperimentCollector(eng, FakeStore(), ttl=0)
    assert _samples(collector) == {}
    upgrade(eng)
    _fill(eng)
    assert ("dethrone_experiment_info" in {k[0] for k in _samples(collector)}) is True
    eng.dispose()


def test_an_unreadable_config_store_yields_no_series(engine):
    _fill(engine)
    store = FakeStore()
    store.down = True
    assert _samples(ExperimentCollector(engine, store)) == {}


def test_a_failure_is_reused_for_the_ttl(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    collector = ExperimentCollector(eng, FakeStore(), ttl=3600)
    assert collector.view() is None
    upgrade(eng)
    _fill(eng)
    assert collector.view() is None  # not asked again before the TTL ends
    eng.dispose()


@pytest.fixture
def gateway(make_app, settings, diamonds):
    source = FakeSource(
        {"1": _fit(diamonds, "regression")[1], "2": _fit(diamonds, "regression", scale=2.0)[1]}
    )
    source.aliases.update(champion="1", challenger="2")
    app = make_app(
        settings.replace(serving_batch_window_ms=0, log_flush_seconds=0.05), model_source=source
    )
    app.extensions["dethrone_serving"].watcher.refresh()
    yield app
    app.extensions["dethrone_serving"].writer.close()


def test_metrics_endpoint_shows_the_running_experiment(gateway):
    client = gateway.test_client()
    client.post("/traffic", json={"mode": "ab", "a": 0.5, "b": 0.5, "salt": "s1"})
    served = []
    for i in range(16):
        body = client.post(
            "/predict",
            json={"rows": [{"carat": 0.3 + i / 50, "depth": 61.0, "cut": "Ideal"}]},
            headers={"X-Dethrone-Unit": f"user-{i % 8}"},
        ).get_json()
        served.append((body["request_id"], body["arm"], body["predictions"][0]))
    assert gateway.extensions["dethrone_serving"].writer.flush(timeout=10)
    losses: dict[str, list[float]] = {}
    for rid, arm, prediction in served[:6]:
        client.post("/feedback", json={"request_id": rid, "row": 0, "label": 1000.0})
        losses.setdefault(arm, []).append(abs(prediction - 1000.0))
    text = client.get("/metrics").get_data(as_text=True)
    exp = 'experiment="1/2/s1:v2"'
    assert (
        f'dethrone_experiment_info{{challenger_version="2",champion_version="1",{exp},mode="ab"}}'
        " 1.0" in text
    )
    arms = {arm for _, arm, _ in served}
    assert arms == {"champion", "challenger"}  # sticky: fixed by the salt and the 8 units
    for arm in arms:
        rows = sum(a == arm for _, a, _ in served)
        units = len({i % 8 for i, (_, a, _) in enumerate(served) if a == arm})
        assert f'dethrone_experiment_split{{arm="{arm}",{exp}}} 0.5' in text
        assert f'dethrone_experiment_rows{{arm="{arm}",{exp}}} {float(rows)}' in text
        assert f'dethrone_experiment_units{{arm="{arm}",{exp}}} {float(units)}' in text
    for arm, values in losses.items():
        line = next(
            ln
            for ln in text.splitlines()
            if ln.startswith(f'dethrone_experiment_loss{{arm="{arm}"')
        )
        assert float(line.split()[-1]) == pytest.approx(sum(values) / len(values), rel=1e-9)
        assert (
            f'dethrone_experiment_labelled_rows{{arm="{arm}",{exp}}} {float(len(values))}' in text
        )
