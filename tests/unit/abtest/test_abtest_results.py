"""One result shape for the fixed-horizon and the sequential decision (issue 19)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from dethrone.abtest import (
    ABDecision,
    GuardrailResult,
    SequentialDecision,
    SequentialGuardrailResult,
    SequentialSRMResult,
    SRMResult,
    decide,
    decide_sequential,
    guardrail_test,
    sequential_srm_test,
    srm_test,
)

# The keys each decision wrote before the types were merged: MLflow, experiment records
# and the CLI read them, so every one must still be there.
FIXED_KEYS = {
    "outcome", "reasons", "srm", "unpaired", "paired", "permutation", "guardrails",
    "alpha", "margin", "guardrail_margin", "srm_threshold", "min_rows_per_arm", "n_boot",
    "n_permutations", "random_state", "expected_share_a",
}  # fmt: skip
SEQUENTIAL_KEYS = {
    "outcome", "reasons", "method", "per_unit", "estimate", "ci_low", "ci_high", "pvalue",
    "mean_a", "mean_b", "relative_improvement", "units_a", "units_b", "rows_a", "rows_b",
    "pairs", "srm", "guardrails", "alpha", "margin", "guardrail_margin", "srm_threshold",
    "expected_share_a", "rho2", "tuning_n", "min_units_per_arm", "max_units_per_arm",
    "test", "loss_cap", "cap_quantile",
}  # fmt: skip
SRM_KEYS = {
    "chi-square": {"statistic", "pvalue", "df", "n_a", "n_b", "expected_share_a",
                   "observed_share_a", "threshold", "mismatch"},
    "bayes-factor": {"log_bayes_factor", "pvalue", "n_a", "n_b", "expected_share_a",
                     "observed_share_a", "concentration", "threshold", "mismatch"},
}  # fmt: skip
GUARDRAIL_KEYS = {
    "welch": {"name", "statistic", "pvalue", "df", "mean_a", "mean_b", "relative_change",
              "margin", "alpha", "failed", "n_a", "n_b"},
    "confidence-sequence": {"name", "mean_a", "mean_b", "harm", "ci_low", "ci_high",
                            "tolerated", "pvalue", "failed", "n_a", "n_b"},
}  # fmt: skip


@pytest.fixture(scope="module")
def both():
    """The same data decided both ways, with a guardrail."""
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0, 1, 1500), 0.8 * rng.lognormal(0, 1, 1500)
    g = {"latency": (rng.lognormal(0, 1, 1500), rng.lognormal(0, 1, 1500))}
    fixed = decide(a, b, expected_share_a=0.5, guardrails=g, n_boot=200)
    seq = decide_sequential(a, b, expected_share_a=0.5, guardrails=g)
    return fixed, seq


def test_old_names_are_the_unified_types():
    assert SequentialDecision is ABDecision
    assert SequentialSRMResult is SRMResult
    assert SequentialGuardrailResult is GuardrailResult


def test_both_kinds_serialise_the_same_keys(both):
    fixed, seq = (d.to_dict() for d in both)
    assert (fixed["kind"], seq["kind"]) == ("fixed-horizon", "sequential")
    assert fixed.keys() == seq.keys()
    assert fixed["srm"].keys() == seq["srm"].keys()
    assert fixed["guardrails"]["latency"].keys() == seq["guardrails"]["latency"].keys()
    for d in (fixed, seq):
        json.dumps(d, allow_nan=False)  # JSON has no NaN: non-finite floats are None


def test_every_key_written_before_is_kept(both):
    fixed, seq = (d.to_dict() for d in both)
    assert FIXED_KEYS <= fixed.keys() and SEQUENTIAL_KEYS <= seq.keys()
    assert SRM_KEYS["chi-square"] <= fixed["srm"].keys()
    assert SRM_KEYS["bayes-factor"] <= seq["srm"].keys()
    assert GUARDRAIL_KEYS["welch"] <= fixed["guardrails"]["latency"].keys()
    assert GUARDRAIL_KEYS["confidence-sequence"] <= seq["guardrails"]["latency"].keys()


def test_fields_only_one_kind_fills_are_none_in_the_other(both):
    fixed, seq = (d.to_dict() for d in both)
    for key in ("unpaired", "permutation", "n_boot", "n_permutations"):
        assert fixed[key] is not None and seq[key] is None, key
    for key in ("rho2", "tuning_n", "max_units_per_arm", "cap_quantile"):
        assert seq[key] is not None and fixed[key] is None, key
    assert fixed["min_rows_per_arm"] == fixed["min_units_per_arm"]
    assert seq["min_rows_per_arm"] == seq["min_units_per_arm"]


def test_fixed_horizon_headline_is_the_welch_test(both):
    fixed = both[0]
    u = fixed.unpaired
    assert u is not None
    assert (fixed.estimate, fixed.ci_low, fixed.ci_high, fixed.pvalue) == (
        u.diff,
        u.ci_low,
        u.ci_high,
        u.pvalue,
    )
    assert (fixed.rows_a, fixed.units_a, fixed.pairs, fixed.method) == (1500, 1500, 0, "unpaired")


def test_srm_and_guardrail_results_have_one_shape():
    chi, bf = srm_test(5000, 5000, 0.5), sequential_srm_test(5000, 5000, 0.5)
    assert chi.to_dict().keys() == bf.to_dict().keys()
    assert (chi.method, bf.method) == ("chi-square", "bayes-factor")
    assert "chi-square p" in chi.reason() and "always-valid SRM p" in bf.reason()
    g = guardrail_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.5], name="x").to_dict()
    assert g["method"] == "welch" and g["ci_low"] is None and g["harm"] == pytest.approx(0.5 / 3)


def test_results_are_frozen(both):
    with pytest.raises(dataclasses.FrozenInstanceError):
        both[0].outcome = "promote"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        both[1].srm.pvalue = 1.0  # type: ignore[misc, union-attr]
