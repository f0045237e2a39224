"""The traffic simulator against a fake router: pacing, bounds, labels, errors, arguments."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from dethrone.settings import Settings
from dethrone.simulation import labels as simulate_labels
from dethrone.simulation import traffic as sim
from dethrone.simulation.traffic import SimulationReport, simulate
from dethrone.slices.router_client import RouterError

SETTINGS = Settings(target="price")


class FakeRouter:
    """Duck-typed RouterClient: rows whose ``key`` gives the label (price = 1000 + key)."""

    def __init__(self, *, pool=50, latency=0.0, fail=None, feedback_status=None, data_fail=None):
        self.pool, self.latency, self.fail = pool, latency, fail
        self.feedback_status, self.data_fail = feedback_status, data_fail
        self.lock = threading.Lock()
        self.fetches = 0
        self.requests: list[dict] = []  # one per /predict call, in arrival order
        self.answers: dict[str, float] = {}  # request id -> time of the answer
        self.posts: list[tuple[float, list[dict]]] = []
        self.next_key = 0

    def get_data(self, *, seed=None):
        with self.lock:
            self.fetches += 1
            if self.data_fail and self.data_fail(self.fetches):
                raise RouterError("HTTP 500: boom", status=500)
            keys = np.arange(self.next_key, self.next_key + self.pool)
            self.next_key += self.pool
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "key": keys,
                "carat": rng.random(self.pool).round(3),
                "cut": rng.choice(["Ideal", "Good"], self.pool),
                "price": 1000.0 + keys,
            }
        )

    def predict(self, rows, *, unit=None, request_id=None):
        with self.lock:
            n = len(self.requests)
            self.requests.append(
                {"t": time.monotonic(), "rows": rows, "unit": unit, "request_id": request_id}
            )
        time.sleep(self.latency(n) if callable(self.latency) else self.latency)
        if self.fail is not None:
            self.fail(n)
        arm = "champion" if n % 2 == 0 else "challenger"
        with self.lock:
            self.answers[request_id] = time.monotonic()
        return {
            "predictions": [1.0] * len(rows),
            "arm": arm,
            "model_version": "1" if arm == "champion" else "2",
            "request_id": request_id,
        }

    def feedback(self, items):
        assert 1 <= len(items) <= 1000
        with self.lock:
            self.posts.append((time.monotonic(), list(items)))
        status = self.feedback_status or (lambda item: "stored")
        return {"results": [{"status": status(item)} for item in items]}

    def labels(self) -> list[dict]:
        return [item for _, items in self.posts for item in items]

    def sent_rows(self) -> dict[tuple[str, int], dict]:
        return {(r["request_id"], j): row for r in self.requests for j, row in enumerate(r["rows"])}


def run(router, **kw):
    kw.setdefault("rate", 200.0)
    kw.setdefault("duration", 5.0)
    return simulate(router, settings=SETTINGS, random_state=kw.pop("seed", 0), **kw)


def test_pace_never_exceeds_rate_and_stops_at_duration():
    router = FakeRouter(latency=0.01)
    before = time.monotonic()
    report = run(router, rate=40.0, duration=1.0)
    starts = np.sort([r["t"] for r in router.requests])
    assert report.requests == len(router.requests)
    assert 20 <= report.requests <= 40  # request i starts at i / rate < duration
    # request i starts at or after start + i / rate, so the i-th earliest does too
    assert np.all(starts - before >= np.arange(len(starts)) / 40.0)
    assert report.seconds <= 1.0 + sim.GRACE
    assert report.errors == 0 and report.rows == report.requests


def test_max_requests_bounds_the_count_before_the_duration():
    router = FakeRouter()
    report = run(router, rate=500.0, duration=30.0, max_requests=25)
    assert report.requests == len(router.requests) == 25
    assert report.seconds < 30.0


def test_hanging_router_is_bounded_in_time_and_counted_unfinished(monkeypatch):
    monkeypatch.setattr(sim, "GRACE", 0.6)
    router = FakeRouter(latency=5.0)
    t0 = time.monotonic()
    report = run(router, rate=20.0, duration=0.5, label_delay=0.2)
    assert time.monotonic() - t0 < 0.5 + 0.2 + 0.6 + 0.5
    # at most MAX_IN_FLIGHT requests could start; none answered
    assert report.requests == sim.MAX_IN_FLIGHT
    assert report.error_statuses == {"unfinished": sim.MAX_IN_FLIGHT}
    assert report.rows == 0 and report.feedback_sent == 0


def test_target_is_held_back_and_labels_match_the_rows_sent():
    router = FakeRouter(pool=30)
    report = run(router, max_requests=40, rows_per_request=3)
    rows = router.sent_rows()
    assert all("price" not in row and set(row) == {"key", "carat", "cut"} for row in rows.values())
    labels = router.labels()
    assert report.feedback_sent == len(labels) == len(rows) == 120
    for item in labels:
        assert item["label"] == 1000.0 + rows[(item["request_id"], item["row"])]["key"]
    # one /get_data slice per 30 rows used, not one per request
    assert router.fetches == 4


def test_labels_wait_for_the_delay_while_sending_keeps_its_pace():
    router = FakeRouter()
    report = run(router, rate=50.0, duration=1.2, label_delay=0.5)
    first_label = min(t for t, _ in router.posts)
    for t, items in router.posts:
        for item in items:
            assert t - router.answers[item["request_id"]] >= 0.5
    # labels of early requests went out while later requests were still being sent
    assert first_label < router.requests[-1]["t"]
    assert report.feedback_sent == report.rows


def test_labels_follow_the_order_of_answers_not_of_requests():
    # the first request is answered last: its labels are due last
    router = FakeRouter(latency=lambda n: 0.4 if n == 0 else 0.0)
    run(router, rate=20.0, duration=0.3, label_delay=0.2)
    first = router.requests[0]["request_id"]
    posted = [item["request_id"] for item in router.labels()]
    assert len(posted) == len(router.requests) == 6
    assert posted[-1] == first
    assert all(router.answers[rid] < router.answers[first] for rid in posted[:-1])


@pytest.mark.parametrize("coverage", [0.0, 0.3, 1.0])
def test_label_coverage_share(coverage):
    router = FakeRouter(pool=500)
    report = run(router, rate=1000.0, max_requests=500, rows_per_request=4, label_coverage=coverage)
    n = report.rows
    assert n == 2000
    share = len(router.labels()) / n
    assert abs(share - coverage) <= 4 * np.sqrt(coverage * (1 - coverage) / n)
    assert report.feedback_sent == len(router.labels())
    if coverage == 0.0:
        assert router.posts == []


def test_label_transform_sees_features_and_changes_labels():
    seen = []

    def transform(X, y):
        seen.append(list(X.columns))
        return np.where(X["cut"] == "Ideal", y * 2, y)

    router = FakeRouter(pool=40)
    run(router, max_requests=40, label_transform=transform)
    rows = router.sent_rows()
    assert seen == [["key", "carat", "cut"]]
    for item in router.labels():
        row = rows[(item["request_id"], item["row"])]
        assert item["label"] == (1000.0 + row["key"]) * (2 if row["cut"] == "Ideal" else 1)


def test_label_transform_with_the_wrong_shape_is_an_argument_error():
    with pytest.raises(ValueError, match="label_transform"):
        run(FakeRouter(), max_requests=5, label_transform=lambda X, y: y[:3])


def test_feedback_is_batched_at_most_1000_items():
    router = FakeRouter(pool=1000)
    report = run(router, rate=1000.0, max_requests=30, rows_per_request=100, label_delay=0.5)
    sizes = [len(items) for _, items in router.posts]
    assert sum(sizes) == report.feedback_sent == 3000
    assert max(sizes) == 1000 and len(sizes) < 30


def _fail_some(n):
    if n % 5 == 1:
        raise RouterError("HTTP 503: busy", status=503)
    if n % 5 == 3:
        raise ConnectionResetError("reset")


def test_errors_are_counted_and_the_run_goes_on():
    router = FakeRouter(fail=_fail_some)
    report = run(router, max_requests=50)
    assert report.requests == 50
    assert report.error_statuses == {"HTTP 503": 10, "ConnectionResetError": 10}
    assert report.errors == 20 and report.rows == 30
    answered = {r["request_id"] for i, r in enumerate(router.requests) if i % 5 not in (1, 3)}
    assert {item["request_id"] for item in router.labels()} == answered
    assert sum(c["requests"] for c in report.per_arm.values()) == 30


def test_refused_labels_are_counted_and_unknown_rows_retried_once(monkeypatch):
    monkeypatch.setattr(simulate_labels, "UNKNOWN_RETRY_SECONDS", 0.05)
    tried: Counter = Counter()

    def status(item):
        key = (item["request_id"], item["row"])
        tried[key] += 1
        k = int(item["label"]) % 4
        if k == 1:
            return "conflict"
        if k == 2:  # logged late: unknown the first time only
            return "unknown" if tried[key] == 1 else "stored"
        return "unknown" if k == 3 else "stored"

    router = FakeRouter(pool=100, feedback_status=status)
    report = run(router, max_requests=100)
    assert report.feedback_sent == 50 and report.feedback_errors == 50
    assert report.error_statuses == {"feedback conflict": 25, "feedback unknown": 25}
    assert max(tried.values()) == 2 and sum(tried.values()) == 150


def test_later_data_failures_reuse_the_old_slice():
    router = FakeRouter(pool=10, data_fail=lambda n: n > 1)
    report = run(router, max_requests=25)
    assert report.rows == 25
    assert report.error_statuses == {"get_data HTTP 500": 2}
    assert {row["key"] for row in router.sent_rows().values()} == set(range(10))


def test_first_data_failure_raises():
    with pytest.raises(RouterError):
        run(FakeRouter(data_fail=lambda n: True), max_requests=5)


def test_units_are_drawn_from_n_ids_and_counted_per_arm():
    router = FakeRouter()
    report = run(router, max_requests=200, units=7)
    units = {r["unit"] for r in router.requests}
    assert units == {f"sim-unit-{i}" for i in range(7)}
    assert all(c["units"] == 7 for c in report.per_arm.values())
    assert report.per_version == {
        "1": {"requests": 100, "rows": 100},
        "2": {"requests": 100, "rows": 100},
    }
    no_units = FakeRouter()
    assert run(no_units, max_requests=5).per_arm["champion"]["units"] == 0
    assert {r["unit"] for r in no_units.requests} == {None}


def test_missing_values_are_sent_as_null_and_missing_labels_skipped():
    class Holes(FakeRouter):
        def get_data(self, *, seed=None):
            frame = super().get_data(seed=seed)
            frame.loc[::2, "carat"] = np.nan
            frame.loc[1::4, "price"] = np.nan
            return frame

    router = Holes(pool=20)
    report = run(router, max_requests=20)
    rows = list(router.sent_rows().values())
    assert sum(row["carat"] is None for row in rows) == 10
    assert report.feedback_sent == 15


def test_progress_reports_growing_counts_and_a_final_view():
    views = []
    report = run(FakeRouter(), rate=30.0, duration=2.2, progress=views.append)
    assert len(views) >= 3 and views[-1]["done"] is True
    running = [v for v in views if not v["done"]]
    assert [v["requests"] for v in running] == sorted(v["requests"] for v in running)
    assert views[-1]["requests"] == report.requests
    assert (
        SimulationReport(
            **{k: v for k, v in views[-1].items() if k not in ("done", "pending_labels")}
        )
        == report
    )


def test_progress_goes_on_between_slow_requests():
    views = []
    report = run(FakeRouter(), rate=0.4, duration=2.6, progress=views.append)
    assert report.requests == 2  # at 0 s and 2.5 s
    running = [v for v in views if not v["done"]]
    assert len(running) >= 2 and running[0]["requests"] == 1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"rate": 0}, "rate"),
        ({"rate": -1}, "rate"),
        ({"rate": float("inf")}, "rate"),
        ({"duration": 0}, "duration"),
        ({"duration": float("nan")}, "duration"),
        ({"label_delay": -0.1}, "label_delay"),
        ({"label_coverage": 1.5}, "label_coverage"),
        ({"label_coverage": -0.1}, "label_coverage"),
        ({"units": 0}, "units"),
        ({"units": 2.5}, "units"),
        ({"max_requests": 0}, "max_requests"),
        ({"rows_per_request": 0}, "rows_per_request"),
        ({"rows_per_request": True}, "rows_per_request"),
    ],
)
def test_bad_arguments_raise_before_any_request(kwargs, name):
    router = FakeRouter()
    with pytest.raises(ValueError, match=name):
        run(router, **kwargs)
    assert router.fetches == 0 and router.requests == []


def test_report_to_dict_round_trips():
    report = run(FakeRouter(), max_requests=4)
    assert SimulationReport(**report.to_dict()) == report
    with pytest.raises(AttributeError):
        report.requests = 1
