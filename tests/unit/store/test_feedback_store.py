"""record_feedback: stored, duplicate, conflict, overwrite, unknown, too old, malformed."""

from __future__ import annotations

import threading
import time

import pytest

from dethrone.store import PredictionLogWriter
from dethrone.store.feedback import (
    MAX_BATCH,
    FeedbackInvalid,
    FeedbackItem,
    parse_feedback,
    record_feedback,
    stored_labels,
)

NOW = time.time()


@pytest.fixture
def logged(engine):
    """Request r1 (rows 0-2, champion with a shadow challenger), r2 (row 0, 40 days old)."""
    log = PredictionLogWriter(engine, flush_seconds=0.05)
    rows = [
        {"request_id": "r1", "row": i, "arm": "champion", "prediction": float(i), "ts": NOW}
        for i in range(3)
    ]
    rows += [
        {
            "request_id": "r1",
            "row": i,
            "arm": "challenger",
            "served": False,
            "prediction": float(i) + 1,
            "ts": NOW,
        }
        for i in range(3)
    ]
    rows.append(
        {
            "request_id": "r2",
            "row": 0,
            "arm": "challenger",
            "prediction": 1.0,
            "ts": NOW - 40 * 86_400,
        }
    )
    log.append(rows)
    assert log.close() == 0
    return engine


def one(engine, label, **kw):
    return record_feedback(engine, [FeedbackItem("r1", 0, label)], single=True, now=NOW, **kw)


def test_first_label_is_stored_with_the_served_arm(logged):
    result = one(logged, 3.5)
    assert result.http_status == 200
    assert result.to_dict() == {
        "request_id": "r1",
        "row": 0,
        "status": "stored",
        "arm": "champion",
        "label": 3.5,
    }
    assert stored_labels(logged, [("r1", 0)]) == {("r1", 0): 3.5}


def test_same_label_twice_is_idempotent(logged):
    one(logged, 3.5)
    again = one(logged, 3.5)
    assert (again.items[0].status, again.http_status) == ("duplicate", 200)
    assert stored_labels(logged, [("r1", 0)]) == {("r1", 0): 3.5}


def test_different_label_is_a_conflict_unless_overwrite(logged):
    # numbers: the logged rows are a regressor's (a label must fit the task, issue 18)
    one(logged, 3.0)
    refused = one(logged, 4.0)
    assert (refused.items[0].status, refused.http_status) == ("conflict", 409)
    assert refused.items[0].previous == 3.0
    assert stored_labels(logged, [("r1", 0)]) == {("r1", 0): 3.0}
    replaced = one(logged, 4.0, overwrite=True)
    assert (replaced.items[0].status, replaced.http_status) == ("overwritten", 200)
    assert stored_labels(logged, [("r1", 0)]) == {("r1", 0): 4.0}


@pytest.mark.parametrize(
    ("item", "status", "code"),
    [
        (FeedbackItem("nope", 0, 1.0), "unknown", 404),
        (FeedbackItem("r1", 9, 1.0), "unknown", 404),
        (FeedbackItem("r2", 0, 1.0), "too_old", 410),
    ],
)
def test_unknown_and_too_old_single_items(logged, item, status, code):
    result = record_feedback(logged, [item], single=True, now=NOW, max_age=30 * 86_400)
    assert (result.items[0].status, result.http_status) == (status, code)
    assert stored_labels(logged, [(item.request_id, item.row)]) == {}


def test_late_label_within_max_age_is_accepted(logged):
    result = record_feedback(logged, [FeedbackItem("r2", 0, 1.0)], now=NOW, max_age=41 * 86_400)
    assert result.items[0].status == "stored"


def test_batch_reports_each_item_and_stores_the_good_ones(logged):
    one(logged, 1.0)
    body = [
        {"request_id": "r1", "row": 0, "label": 2.0},
        {"request_id": "r1", "row": 1, "label": 5},
        {"request_id": "zz", "row": 0, "label": 1},
    ]
    items, overwrite, single = parse_feedback(body)
    result = record_feedback(logged, items, overwrite=overwrite, now=NOW)
    assert [i.status for i in result.items] == ["conflict", "stored", "unknown"]
    assert result.http_status == 207 and not single
    assert result.to_dict()["counts"]["stored"] == 1
    assert stored_labels(logged, [("r1", 0), ("r1", 1)]) == {("r1", 0): 1.0, ("r1", 1): 5}
    fine = record_feedback(logged, [FeedbackItem("r1", 2, 0.0)], now=NOW)
    assert fine.http_status == 200


def test_concurrent_identical_feedback_is_stored_once(logged):
    results, errors = [], []

    def post() -> None:
        try:
            results.append(record_feedback(logged, [FeedbackItem("r1", 1, 7.0)], now=NOW))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.items[0].status for r in results) == ["duplicate"] * 5 + ["stored"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"row": 0, "label": 1}, "request_id"),
        ({"request_id": "", "row": 0, "label": 1}, "request_id"),
        ({"request_id": 5, "row": 0, "label": 1}, "request_id"),
        ({"request_id": "r", "row": -1, "label": 1}, "row"),
        ({"request_id": "r", "row": "0", "label": 1}, "row"),
        ({"request_id": "r", "row": True, "label": 1}, "row"),
        ({"request_id": "r", "row": 0}, "label"),
        ({"request_id": "r", "row": 0, "label": None}, "label"),
        ({"request_id": "r", "row": 0, "label": True}, "label"),
        ({"request_id": "r", "row": 0, "label": float("nan")}, "label"),
        ({"request_id": "r", "row": 0, "label": [1]}, "label"),
        ({"request_id": "r", "row": 0, "label": 1, "overwrite": "yes"}, "overwrite"),
        ({"request_id": "r", "row": 0, "label": 1, "extra": 1}, "extra"),
        (
            [{"request_id": "r", "row": 0, "label": 1}, {"request_id": "r", "row": 0, "label": 2}],
            "[1]",
        ),
        ([{"request_id": "r", "row": 0, "label": 1}, "x"], "[1]"),
        ([], "body"),
        ([{"request_id": "r", "row": i, "label": 1} for i in range(MAX_BATCH + 1)], "body"),
        ({"items": [{"request_id": "r", "row": 0, "label": "x" * 200}]}, "items[0].label"),
        ("text", "body"),
        # found by schemathesis: a batch item's own overwrite used to be ignored silently
        ([{"request_id": "r", "row": 0, "label": 1, "overwrite": None}], "[0].overwrite"),
        (
            {"items": [{"request_id": "r", "row": 0, "label": 1, "overwrite": True}]},
            "items[0].overwrite",
        ),
    ],
)
def test_malformed_bodies_name_the_field(body, field):
    with pytest.raises(FeedbackInvalid) as info:
        parse_feedback(body)
    assert info.value.field == field


def test_malformed_item_writes_nothing(logged):
    with pytest.raises(FeedbackInvalid):
        record_feedback(
            logged,
            [
                {"request_id": "r1", "row": 0, "label": 1},
                {"request_id": "r1", "row": -3, "label": 1},
            ],
            now=NOW,
        )
    assert stored_labels(logged, [("r1", 0)]) == {}
