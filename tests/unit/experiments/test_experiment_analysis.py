"""A look reads the same rows and losses as the log's own export, only faster."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import insert

from dethrone.experiments.analysis import experiment_arms, guardrail_arms, read_log
from dethrone.registry.records import LiveExperiment
from dethrone.store import make_engine, upgrade
from dethrone.store.export import joined_predictions
from dethrone.store.schema import feedback, predictions

REC = LiveExperiment(id="e", champion_version="1", challenger_version="2", started_at=100.0)
VALUES = [  # (prediction, label): numbers, classes, class probabilities, booleans, lists
    (3.5, 1.0),
    (2, 2),
    ("a", "a"),
    ("a", "b"),
    ({"a": 0.2, "b": 0.8}, "b"),
    ({"a": 0.9, "b": 0.1}, "b"),
    (1, "1"),
    (True, "true"),
    ([0.1, 0.9], 1),
    (0.0, "x"),
]


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    upgrade(eng)
    rows, labels = [], []
    for i, (pred, label) in enumerate(VALUES * 3):
        arm, version = [
            ("champion", "1"),
            ("challenger", "2"),
            ("champion", "2"),
            ("shadow", "2"),
            ("challenger", "1"),
        ][i % 5]
        rows.append(
            {
                "request_id": f"r{i}",
                "row": 0,
                "arm": arm,
                "served": arm != "shadow",
                "unit": f"u{i % 4}",
                "model_version": version,
                "prediction": pred,
                "ts": 50.0 if i == 0 else 200.0 + i,
            }
        )
        if i % 7:  # some rows stay unlabelled
            labels.append({"request_id": f"r{i}", "row": 0, "label": label, "received_at": 300.0})
    with eng.begin() as conn:
        conn.execute(insert(predictions), rows)
        conn.execute(insert(feedback), labels)
    yield eng
    eng.dispose()


@pytest.mark.parametrize("arms", [experiment_arms, guardrail_arms])
def test_same_rows_and_losses_as_joined_predictions(engine, arms):
    pairs = arms(REC)
    got = read_log(engine, REC, pairs).sort_values("request_id").reset_index(drop=True)
    ref = joined_predictions(engine, since=REC.started_at)
    keep = ref["loss"].notna() & np.logical_or.reduce(
        [(ref["arm"] == a) & (ref["model_version"] == v) for a, v in pairs]
    )
    ref = ref[keep].sort_values("request_id").reset_index(drop=True)
    assert len(got) == len(ref) > 0
    assert got["request_id"].tolist() == ref["request_id"].tolist()
    np.testing.assert_allclose(got["loss"].to_numpy(), ref["loss"].to_numpy())
    assert got["unit"].tolist() == ref["unit"].tolist()
