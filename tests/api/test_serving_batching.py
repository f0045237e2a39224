"""Micro-batching and sticky assignment as units (no app)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from dethrone_router.gateway.assignment import assign, bucket, experiment_salt
from dethrone_router.gateway.batching import MicroBatcher, combine


class SlowDouble:
    """A model whose call costs ``delay`` seconds whatever the rows (like a forest)."""

    def __init__(self, delay: float) -> None:
        self.delay, self.calls = delay, []

    def __call__(self, frame: pd.DataFrame, want_proba: bool):
        self.calls.append(len(frame))
        time.sleep(self.delay)
        x = frame["x"].to_numpy()
        return x * 2, (np.c_[x, -x] if want_proba else None)


def test_idle_requests_are_scored_alone_and_at_once():
    model = SlowDouble(0.0)
    batcher = MicroBatcher(model, max_rows=64, window=0.5)
    started = time.perf_counter()
    for i in range(5):
        assert batcher.submit(pd.DataFrame({"x": [i]}))[0].tolist() == [2 * i]
    # No request waited for the 0.5 s window: the model was idle each time.
    assert time.perf_counter() - started < 0.5
    assert model.calls == [1] * 5


@pytest.mark.parametrize("max_rows", [4, 64])
def test_concurrent_requests_share_calls_and_get_their_own_rows(max_rows):
    model = SlowDouble(0.02)
    seen = []
    batcher = MicroBatcher(
        model, max_rows=max_rows, window=0.005, observe=lambda n, rows: seen.append((n, rows))
    )
    results: dict[int, tuple] = {}

    def call(i: int) -> None:
        frame = pd.DataFrame({"x": [i, i + 0.5]})
        results[i] = batcher.submit(frame, proba=i % 2 == 0)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for i in range(24):
        labels, proba = results[i]
        assert labels.tolist() == [2 * i, 2 * i + 1]
        assert (proba is None) == (i % 2 == 1)
        if proba is not None:
            assert proba.tolist() == [[i, -i], [i + 0.5, -(i + 0.5)]]
    assert sum(model.calls) == 48 and len(model.calls) < 24
    assert max(model.calls) <= max(max_rows, 2)
    assert sum(n for n, _ in seen) == 24


def test_a_failing_call_fails_only_its_callers():
    def score(frame, want_proba):
        if frame["x"].isna().any():
            raise ValueError("NaN")
        return frame["x"].to_numpy(), None

    batcher = MicroBatcher(score, max_rows=8, window=0)
    with pytest.raises(ValueError, match="NaN"):
        batcher.submit(pd.DataFrame({"x": [np.nan]}))
    assert batcher.submit(pd.DataFrame({"x": [3.0]}))[0].tolist() == [3.0]


@pytest.mark.parametrize("n_parts", [1, 3])
def test_combined_rows_keep_string_columns_as_objects(n_parts):
    # pandas 3 would infer its Arrow-backed str dtype, which encoders convert back on
    # every call; models are trained on object columns.
    part = {"cut": np.array(["Ideal", None], dtype=object), "carat": np.array([0.3, 1.2])}
    frame = combine([part] * n_parts)
    assert frame["cut"].dtype == object and frame["carat"].dtype == np.float64
    assert frame["cut"].tolist() == ["Ideal", None] * n_parts
    assert frame["carat"].tolist() == [0.3, 1.2] * n_parts


def test_buckets_are_uniform_and_independent_of_the_salt():
    units = [str(i) for i in range(5000)]
    u = np.array([bucket("s1", x) for x in units])
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    v = np.array([bucket("s2", x) for x in units])
    # A new salt re-randomises: the two assignments are uncorrelated.
    assert abs(stats.pearsonr(u, v).statistic) < 4 / np.sqrt(len(units))


def test_salt_follows_the_challenger_version():
    assert experiment_salt("", "3") != experiment_salt("", "4")
    assert experiment_salt(None, None) == experiment_salt("", None)


def test_assignment_without_unit_is_random_at_the_share():
    rng = np.random.default_rng(3)

    class Rng:
        def random(self):
            return rng.random()

    arms = [assign(0.7, salt="s", unit=None, rng=Rng()) for _ in range(4000)]
    share = np.mean([a == "champion" for a in arms])
    assert abs(share - 0.7) < 3 * np.sqrt(0.21 / 4000)
