"""Drift detection: a pluggable drift test per feature, corrected across features.

The default tests are KS for numeric features and PSI with chi-square for categorical
ones; reference (and current) data can be mergeable profiles, exact or KLL-sketched.

Public API: :func:`detect_drift`, :class:`DriftReport`, :class:`FeatureDrift`,
:class:`ReferenceProfile`, :class:`FeatureProfile`, :func:`render_html`, and the test
unit: :class:`DriftTest`, :class:`TestResult`, :func:`register_test`,
:func:`get_test`, :func:`registered_tests`.
"""

from dethrone.drift.detect import detect_drift
from dethrone.drift.html import render_html
from dethrone.drift.profile import FeatureProfile, ReferenceProfile
from dethrone.drift.report import DriftReport, FeatureDrift
from dethrone.drift.stattests import (
    DriftTest,
    KSTest,
    PsiChi2Test,
    TestResult,
    WassersteinTest,
    get_test,
    register_test,
    registered_tests,
    unregister_test,
)

__all__ = [
    "detect_drift",
    "DriftReport",
    "DriftTest",
    "FeatureDrift",
    "FeatureProfile",
    "KSTest",
    "PsiChi2Test",
    "ReferenceProfile",
    "TestResult",
    "WassersteinTest",
    "get_test",
    "register_test",
    "registered_tests",
    "render_html",
    "unregister_test",
]
