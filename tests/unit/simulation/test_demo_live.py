"""The demo's live-loop lines: a look with and without enough labels, and the summary."""

from __future__ import annotations

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
    assert "not enough labels yet -> continue" in _look_line(
        1, {"action": "continue", "look": {"units_a": 3, "units_b": 0, "ci_low": None}}
    )
    line = _look_line(2, {"action": "promoted", "look": LOOK})
    assert "units 310/296" in line and "[120.0, 700.0] -> promoted" in line


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
    assert "final interval of the improvement [120.0, 700.0]" in text
    assert text.endswith("  - no SRM")
