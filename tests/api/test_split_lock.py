"""While a live experiment runs, only the experiment itself may move its split (rule 5 of
issue 17): a 10% → 50% ramp in mid-experiment would mix phases in one analysis."""

from __future__ import annotations

import pytest

HEADER = {"X-Dethrone-Experiment": "live-v2-abc"}


@pytest.fixture
def running(client):
    body = {"a": 0.9, "b": 0.1, "mode": "ab", "salt": "live-v2-abc", "experiment": "live-v2-abc"}
    assert client.post("/traffic", json=body, headers=HEADER).status_code == 200
    return client


@pytest.mark.parametrize(
    "change",
    [{"a": 0.5, "b": 0.5}, {"mode": "shadow"}, {"salt": "other"}, {"experiment": None}],
)
def test_others_cannot_move_a_locked_field(running, change):
    resp = running.post("/traffic", json=change)
    assert resp.status_code == 409
    err = resp.get_json()["error"]
    assert err["code"] == "experiment_running" and "live-v2-abc" in err["message"]
    assert err["field"] == next(iter(change))
    assert running.get("/traffic").get_json()["b"] == 0.1  # nothing half-written


def test_the_experiment_itself_may(running):
    resp = running.post("/traffic", json={"mode": "champion", "experiment": None}, headers=HEADER)
    assert resp.status_code == 200 and resp.get_json()["traffic"]["experiment"] is None
    # ended: the split is free again
    assert running.post("/traffic", json={"a": 0.5, "b": 0.5}).status_code == 200


def test_unlocked_fields_and_same_values_still_change(running):
    assert running.post("/traffic", json={"drift_cols": ["carat"]}).status_code == 200
    assert running.post("/traffic", json={"a": 0.9, "b": 0.1}).status_code == 200


def test_another_experiments_header_is_not_enough(running):
    resp = running.post(
        "/traffic", json={"a": 0.5, "b": 0.5}, headers={"X-Dethrone-Experiment": "live-v3-x"}
    )
    assert resp.status_code == 409


def test_no_experiment_no_lock(client):
    assert client.get("/traffic").get_json()["experiment"] is None
    assert client.post("/traffic", json={"a": 0.2, "b": 0.8}).status_code == 200
    bad = client.post("/traffic", json={"experiment": 5})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "experiment"
