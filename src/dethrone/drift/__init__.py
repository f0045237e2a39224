"""Drift detection: KS and PSI (with chi-square) per feature, corrected across features.

Public API: :func:`detect_drift`, :class:`DriftReport`, :class:`FeatureDrift`,
:class:`ReferenceProfile`, :func:`render_html`.
"""

from dethrone.drift.detect import detect_drift
from dethrone.drift.html import render_html
from dethrone.drift.profile import FeatureProfile, ReferenceProfile
from dethrone.drift.report import DriftReport, FeatureDrift

__all__ = [
    "detect_drift",
    "DriftReport",
    "FeatureDrift",
    "FeatureProfile",
    "ReferenceProfile",
    "render_html",
]
