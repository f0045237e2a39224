"""The typed tag records: round trips, partial updates, and their docstring examples."""

from __future__ import annotations

import doctest

import pytest

from dethrone.registry import records
from dethrone.registry.records import Decision, LiveExperiment, ModelInfo


@pytest.mark.parametrize(
    "record",
    [
        Decision(outcome="keep", final=False, reasons=["worse"], champion_version="1"),
        ModelInfo(features=["a", "b"], categorical=["b"], numeric=["a"], target="y", task="t"),
        LiveExperiment(id="x", split=0.25, thresholds={"alpha": 0.05}, state="running"),
    ],
)
def test_to_tags_and_back_is_the_same_record(record):
    assert type(record).from_tags(record.to_tags()) == record


@pytest.mark.parametrize("final", [True, False])
def test_field_tags_encode_like_to_tags_and_touch_nothing_else(final):
    tags = Decision.field_tags(final=final)
    assert tags == {Decision.tag("final"): Decision(final=final).to_tags()[Decision.tag("final")]}
    assert Decision.from_tags(tags).final is final and Decision.from_tags(tags).outcome == ""


def test_field_tags_refuse_an_unknown_field():
    with pytest.raises(KeyError, match="no field 'finale'"):
        Decision.field_tags(finale=True)


def test_docstring_examples_run():
    assert doctest.testmod(records).failed == 0
