"""One rule for settings: library functions never read the environment.

Without an explicit ``settings`` they use the built-in defaults (``Settings()``); the edges
(command line, DAG, router) pass ``Settings.from_env()``. ``decide`` and ``detect_drift``
used to disagree: one ignored AB_ALPHA/AB_MARGIN, the other read PSI_THRESHOLD.
"""

from __future__ import annotations

import numpy as np
import pytest

from dethrone.settings import Settings


@pytest.fixture
def hostile_env(monkeypatch):
    for name, value in (
        ("PSI_THRESHOLD", "0.9"),
        ("KS_PVALUE_THRESHOLD", "0.5"),
        ("AB_ALPHA", "0.4"),
        ("AB_MARGIN", "3.0"),
        ("PSI_BINS", "3"),
        ("CV_FOLDS", "7"),
    ):
        monkeypatch.setenv(name, value)


def test_detect_drift_ignores_the_environment(hostile_env, diamonds):
    from dethrone.drift import ReferenceProfile, detect_drift

    frame = diamonds.head(500)
    report = detect_drift(frame, frame, categorical=["cut", "color", "clarity"])
    assert report.thresholds["psi_threshold"] == Settings().psi_threshold
    assert ReferenceProfile.from_frame(frame).psi_bins == Settings().psi_bins


def test_decide_ignores_the_environment(hostile_env, rng):
    from dethrone.abtest import decide

    a, b = rng.normal(1.0, 1.0, 400), rng.normal(1.0, 1.0, 400)
    decision = decide(a, b, expected_share_a=0.5, random_state=0)
    assert (decision.alpha, decision.margin) == (Settings().ab_alpha, Settings().ab_margin)


def test_edges_pass_the_environment_explicitly(hostile_env, rng):
    from dethrone.abtest import decide

    a, b = rng.normal(1.0, 1.0, 400), rng.normal(1.0, 1.0, 400)
    decision = decide(a, b, expected_share_a=0.5, random_state=0, settings=Settings.from_env())
    assert (decision.alpha, decision.margin) == (0.4, 3.0)
    assert np.isfinite(decision.unpaired.pvalue)
