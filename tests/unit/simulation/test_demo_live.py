"""The demo's live-loop lines: a look with and without enough labels, and the summary."""

from __future__ import annotations

from types import SimpleNamespace

from dethrone.simulation.demo_live import _look_line, format_summary

LOOK = {
    "phase": "experiment",
    "units_a": 310,
    "units_b": 296,
    "mean_a": 950.0,
    "mean_b": 540.5,
    "ci_low": 120.0,
    "ci_high": 700.0,
}


def test_look_lines():
    rec = SimpleNamespace(thresholds={"min_units_per_arm": 100, "margin": 0.0}, reasons=[])
    line = _look_line(
        1, {"action": "continue", "look": {"units_a": 71, "units_b": 60, "ci_low": None}}, rec
    )
    assert line == "    look 1: continue: 71/60 units, need 100 per arm"  # issue 20
    line = _look_line(2, {"action": "continue", "look": {**LOOK, "ci_low": -5.0}}, rec)
    assert line.endswith("-> continue: 310/296 units, interval [-5, 700] includes the margin 0")
    done = SimpleNamespace(**{**vars(rec), "reasons": ["challenger better by 410 (price)"]})
    line = _look_line(3, {"action": "promoted", "look": LOOK}, done)
    assert "units 310/296" in line
    assert "[120, 700] -> promoted: challenger better by 410 (price)" in line


def test_summary_names_decision_interval_and_reasons():
    text = format_summary(
        {
            "decision": "promoted",
            "looks": 3,
            "seconds_to_decision": 21.5,
            "state": "promoted",
            "last_look": LOOK,
            "reasons": ["challenger better", "no SRM"],
        }
    )
    assert text.splitlines()[0].startswith("live experiment: promoted after 3 looks (21.5 s")
    assert "final interval of the improvement [120, 700]" in text
    assert text.endswith("  - no SRM")
