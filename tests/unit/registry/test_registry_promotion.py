"""Promotion and rollback when the connection is cut after any call (in-memory client).

For every k, the client fails every call after the k-th; then the next attempt (a task
retry, or ``dethrone rollback``) runs on a healthy connection. The registry must end as
after a clean promotion, and no version that was a rollback target may be lost. The same
is checked against a real MLflow server behind a cutting proxy in
``tests/integration/test_registry_faults.py``.
"""

from __future__ import annotations

import pytest

from dethrone.registry.client import RegistryError
from dethrone.registry.records import Decision
from tests.unit.pipeline_fakes import InMemoryRegistry


def _registry() -> InMemoryRegistry:
    """v1 @previous-champion, v2 @champion, v3 @challenger."""
    reg = InMemoryRegistry()
    for i in (1, 2, 3):
        reg.fake.add_version(reg.name, f"run-{i}")
    reg.promote("1")
    reg.promote("2")
    reg.set_alias("challenger", "3")
    return reg


BEFORE = {"champion": "2", "challenger": "3", "previous-champion": "1"}
AFTER = {"champion": "3", "challenger": None, "previous-champion": "2"}


def _calls_of_clean_promotion() -> int:
    reg = _registry()
    start = reg.fake.calls
    reg.promote("3", Decision(outcome="promote"))
    calls = reg.fake.calls - start
    assert reg.aliases() == AFTER
    return calls


N_CALLS = _calls_of_clean_promotion()


@pytest.mark.parametrize("k", range(N_CALLS))
def test_interrupted_promotion_is_finished_by_the_retry(k):
    reg = _registry()
    reg.fake.cut_after = reg.fake.calls + k
    with pytest.raises(RegistryError, match="did not answer"):
        reg.promote("3", Decision(outcome="promote"))
    reg.fake.cut_after = None
    seen = reg.aliases()
    # between the cut and the retry the champion is never the previous champion
    assert seen["champion"] != seen["previous-champion"] or reg.pending_promotion()
    assert reg.promote("3", Decision(outcome="promote")) == {"champion": "3", "previous": "2"}
    assert reg.aliases() == AFTER and reg.pending_promotion() is None


@pytest.mark.parametrize("k", range(N_CALLS))
def test_rollback_after_an_interrupted_promotion_never_loses_a_version(k):
    reg = _registry()
    reg.fake.cut_after = reg.fake.calls + k
    with pytest.raises(RegistryError):
        reg.promote("3", Decision(outcome="promote"))
    reg.fake.cut_after = None
    promoted = reg.pending_promotion() is not None or reg.aliases() == AFTER
    out = reg.rollback("operator gave up on the release")
    if promoted:  # the promotion is finished first, then rolled back from 3 to 2
        assert out == {"champion": "2", "previous": "3"}
        assert reg.aliases() == {"champion": "2", "challenger": None, "previous-champion": "3"}
    else:  # the cut came before the intent was recorded: rolled back from 2 to 1
        assert out == {"champion": "1", "previous": "2"}
        assert reg.aliases() == {"champion": "1", "challenger": "3", "previous-champion": "2"}
    assert reg.pending_promotion() is None


@pytest.mark.parametrize("k", range(4))
def test_interrupted_rollback_is_finished_by_the_next_one(k):
    reg = _registry()
    # rollback reads the pending intent and two aliases, then records its own intent
    reg.fake.cut_after = reg.fake.calls + 4 + k
    with pytest.raises(RegistryError):
        reg.rollback("bad")
    reg.fake.cut_after = None
    assert reg.pending_promotion() is not None
    reg.rollback("bad")  # finishes the first rollback, then rolls back again
    assert reg.aliases() == BEFORE


def test_status_shows_an_interrupted_promotion_until_it_is_finished():
    from dethrone.registry.status import collect_status, format_status

    reg = _registry()
    reg.fake.cut_after = reg.fake.calls + 7  # intent recorded, aliases half-moved
    with pytest.raises(RegistryError):
        reg.promote("3", Decision(outcome="promote"))
    reg.fake.cut_after = None
    status = collect_status(reg.settings, reg)
    assert status["pending_promotion"]["version"] == "3"
    assert "INTERRUPTED promote to version 3 (was 2)" in format_status(status)
    reg.promote("3", Decision(outcome="promote"))
    status = collect_status(reg.settings, reg)
    assert status["pending_promotion"] is None and status["aliases"] == AFTER
    assert "INTERRUPTED" not in format_status(status)
