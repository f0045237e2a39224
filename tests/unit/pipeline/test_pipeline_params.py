"""DAG params -> settings, and the slice seeds of a run."""

from __future__ import annotations

import pytest

from dethrone.pipeline.steps import run_seed, settings_from_params
from dethrone.settings import Settings


def test_params_override_settings_and_skip_empty_values(monkeypatch):
    monkeypatch.setenv("PSI_THRESHOLD", "0.2")
    s = settings_from_params(
        {
            "ks_pvalue_threshold": 0.01,
            "psi_threshold": None,
            "ab_alpha": "",
            "force_challenger": True,
            "seed": 3,
        }
    )
    assert s.ks_pvalue_threshold == 0.01
    assert s.psi_threshold == 0.2  # None keeps the environment's value
    assert s.ab_alpha == Settings().ab_alpha


def test_unknown_param_is_an_error():
    with pytest.raises(ValueError, match="unknown setting 'psi_treshold'"):
        settings_from_params({"psi_treshold": 0.3})


def test_run_seed_is_stable_per_run_and_purpose():
    s = Settings(random_state=42)
    assert run_seed("run-1", "current", s) == run_seed("run-1", "current", s)
    assert run_seed("run-1", "current", s) != run_seed("run-2", "current", s)
    assert run_seed("run-1", "current", s) != run_seed("run-1", "ab", s)
    # an explicit seed makes the slices independent of the run id
    assert run_seed("run-1", "ab", s, seed=5) == run_seed("run-9", "ab", s, seed=5)
    assert 0 <= run_seed("x", "y", s) < 2**31 - 1
