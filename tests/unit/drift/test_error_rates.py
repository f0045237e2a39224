"""False-alarm rate and power of detect_drift, measured by seeded simulation.

Numbers seen when this was written (seed 20261123): see the assertions' messages.
"""

import zlib

import numpy as np
import pytest

from dethrone.drift import ReferenceProfile, detect_drift
from dethrone.settings import Settings
from dethrone.slices.injection import apply_drift

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]
N = 5000

pytestmark = pytest.mark.slow


def _slice(diamonds, rng):
    return diamonds.iloc[rng.choice(len(diamonds), N, replace=False)][FEATURES]


def test_false_alarm_rate_at_most_five_percent(diamonds):
    settings = Settings()
    flagged = 0
    for rep in range(200):
        rng = np.random.default_rng(1000 + rep)
        flagged += detect_drift(
            _slice(diamonds, rng), _slice(diamonds, rng), settings=settings
        ).drifted
    assert flagged <= 10, f"dataset drift flagged in {flagged}/200 same-distribution slices"


@pytest.mark.parametrize("feature", FEATURES)
def test_seed_drift_in_one_feature_is_caught(diamonds, feature):
    settings = Settings()
    rng = np.random.default_rng(zlib.crc32(feature.encode()))
    profile = ReferenceProfile.from_frame(_slice(diamonds, rng), settings=settings)
    caught = wrong = 0
    for _ in range(100):
        current = apply_drift(_slice(diamonds, rng), [feature], rng)
        report = detect_drift(profile, current, settings=settings)
        caught += report.drifted and report.features[feature].drifted
        wrong += len(set(report.drifted_features) - {feature})
    assert caught >= 99, f"seed drift in {feature} caught in {caught}/100"
    assert wrong <= 5, f"{wrong} undrifted features flagged alongside {feature}"
