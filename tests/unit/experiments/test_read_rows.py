"""The rows of a look: every served row of the experiment's salt, labelled or not, with
its proper loss; failed predictions are errors, not dropped rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sqlalchemy import insert

from dethrone.experiments.analysis import ROW_COLUMNS, read_rows
from dethrone.experiments.live_loss import live_losses, loss_for, loss_unit
from dethrone.registry.records import LiveExperiment
from dethrone.store import make_engine, upgrade
from dethrone.store.schema import feedback, predictions

REC = LiveExperiment(id="e", champion_version="1", challenger_version="2", salt="e", started_at=100)
ARMS = [("champion", "1"), ("challenger", "2")]


def _log(eng, rows, labels):
    with eng.begin() as conn:
        conn.execute(insert(predictions), rows)
        if labels:
            conn.execute(insert(feedback), labels)


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    upgrade(eng)
    return eng


def _row(i, *, arm="champion", version="1", salt="e", pred=1.0, ts=200.0, unit=None):
    return {
        "request_id": f"r{i}",
        "row": 0,
        "arm": arm,
        "served": True,
        "unit": unit,
        "model_version": version,
        "salt": salt,
        "prediction": pred,
        "ts": ts,
        "latency_ms": 5.0 + i,
    }


def test_rows_of_other_salts_and_before_the_start_do_not_enter(engine):
    _log(
        engine,
        [
            _row(0),
            _row(1, salt="other"),  # a worker that had not applied the experiment yet
            _row(2, ts=50.0),  # before the start
            _row(3, arm="challenger", version="2"),
            _row(4, arm="challenger", version="1"),  # not an (arm, version) of the phase
        ],
        [],
    )
    frame, _ = read_rows(engine, REC, ARMS, salts=("e",), loss="auto")
    assert sorted(frame["request_id"]) == ["r0", "r3"]
    assert tuple(frame.columns) == ROW_COLUMNS


def test_unlabelled_rows_enter_with_nan_loss_and_labelled_at(engine):
    _log(
        engine,
        [_row(0, pred=3.5), _row(1, pred=2.0)],
        [{"request_id": "r0", "row": 0, "label": 1.0, "received_at": 250.0}],
    )
    frame, loss = read_rows(engine, REC, ARMS, salts=("e",), loss="auto")
    frame = frame.set_index("request_id")
    assert loss == "absolute_error"
    assert frame.loc["r0", "loss"] == 2.5 and frame.loc["r0", "labelled_at"] == 250.0
    assert math.isnan(frame.loc["r1", "loss"]) and math.isnan(frame.loc["r1", "labelled_at"])
    assert frame.loc["r1", "served_at"] == 200.0 and frame.loc["r1", "latency_ms"] == 6.0


def test_a_failed_prediction_is_an_error_row(engine):
    _log(
        engine,
        [_row(0, pred=None), _row(1)],
        [{"request_id": "r0", "row": 0, "label": 1.0, "received_at": 250.0}],
    )
    frame, _ = read_rows(engine, REC, ARMS, salts=("e",), loss="auto")
    frame = frame.set_index("request_id")
    assert bool(frame.loc["r0", "error"]) and not bool(frame.loc["r1", "error"])
    assert math.isnan(frame.loc["r0", "loss"])


def test_classifier_rows_get_the_log_loss_of_their_probabilities(engine):
    _log(
        engine,
        [_row(0, pred={"a": 0.8, "b": 0.2}), _row(1, pred={"a": 0.1, "b": 0.9})],
        [
            {"request_id": "r0", "row": 0, "label": "a", "received_at": 250.0},
            {"request_id": "r1", "row": 0, "label": "a", "received_at": 250.0},
        ],
    )
    frame, loss = read_rows(engine, REC, ARMS, salts=("e",), loss="auto")
    assert loss == "log_loss"
    got = frame.set_index("request_id")["loss"]
    np.testing.assert_allclose([got["r0"], got["r1"]], [-np.log(0.8), -np.log(0.1)], rtol=1e-12)


@pytest.mark.parametrize(
    ("pred", "label", "loss", "expected"),
    [
        (2, 0, "zero_one_loss", 1.0),  # integer classes: not the difference of the codes
        (0, 0.0, "zero_one_loss", 0.0),
        ({"0": 0.3, "2": 0.7}, 2, "log_loss", -np.log(0.7)),
        ({"a": 0.3, "b": 0.7}, "c", "log_loss", -np.log(np.finfo(float).eps)),
        ({"a": 0.3, "b": 0.7}, "b", "brier", 0.3**2 + 0.3**2),
        ({"a": 0.3, "b": 0.7}, "c", "brier", 0.3**2 + 0.7**2 + 1.0),
        (3.0, 1.0, "squared_error", 4.0),
        ("x", 1.0, "absolute_error", np.nan),
    ],
)
def test_live_losses(pred, label, loss, expected):
    got = live_losses([pred], [label], loss)[0]
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)


def test_log_loss_matches_sklearn():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=200)
    labels = rng.integers(0, 3, size=200)
    preds = [{str(k): float(p[k]) for k in range(3)} for p in proba]
    ours = live_losses(preds, labels.tolist(), "log_loss").mean()
    assert ours == pytest.approx(log_loss(labels, proba, labels=[0, 1, 2]), rel=1e-9)


def test_loss_choice_and_unit():
    assert loss_for("auto", [None, "null", "cat"]) == "zero_one_loss"
    assert loss_unit("squared_error", "price") == "squared price units"
    with pytest.raises(ValueError, match="LIVE_LOSS"):
        loss_for("hinge", [])
