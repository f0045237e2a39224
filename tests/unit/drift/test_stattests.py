"""Drift tests as pluggable units: the registry, a user's own test, the built-ins
against scipy, and the decision rule with a sketch's error bound."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from dethrone.drift import (
    DriftTest,
    ReferenceProfile,
    TestResult,
    detect_drift,
    get_test,
    register_test,
    registered_tests,
    render_html,
    unregister_test,
)
from dethrone.drift.stattests import (
    KSTest,
    aligned_counts,
    ks_between,
    wasserstein_between,
    weighted_std,
)
from dethrone.slices.injection import apply_drift

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


class JensenShannon(DriftTest):
    """A user's categorical test: Jensen-Shannon distance (base 2), no p-value."""

    name = "js"
    kinds = frozenset({"categorical"})

    def __init__(self, threshold: float = 0.1):
        self.threshold = threshold

    def compute(self, reference, current, settings):
        labels, ref, cur, unseen = aligned_counts(reference, current)
        ref = np.append(ref, 0)
        cur = np.append(cur, sum(unseen.values()))
        if ref.sum() == 0 or cur.sum() == 0:
            return TestResult(status="no_data", effect_threshold=self.threshold)
        js = float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2))
        return TestResult(
            statistic=js,
            statistic_name="JS",
            effect=js,
            effect_threshold=self.threshold,
            threshold=self.threshold,
            bins=(*labels, "<unseen>"),
            reference_share=tuple(ref / ref.sum()),
            current_share=tuple(cur / cur.sum()),
        )


@pytest.fixture
def slices(diamonds, rng):
    def draw():
        idx = rng.choice(len(diamonds), 5000, replace=False)
        return diamonds.iloc[idx][FEATURES].reset_index(drop=True)

    return draw(), draw()


def test_registry_has_the_defaults_and_the_extra():
    names = registered_tests()
    assert {"ks", "psi+chi2", "wasserstein"} <= set(names)
    assert names["ks"].kinds == {"numeric"} and names["psi+chi2"].kinds == {"categorical"}
    with pytest.raises(ValueError, match="no drift test named 'nope'"):
        get_test("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_test(KSTest())
    with pytest.raises(ValueError, match="must be a DriftTest"):
        register_test(object())


def test_custom_test_per_kind(slices, rng):
    ref, cur = slices
    cur = apply_drift(cur, ["color"], rng)
    report = detect_drift(ref, cur, tests={"categorical": JensenShannon(0.05)})
    color, cut = report.features["color"], report.features["cut"]
    assert color.method == cut.method == "js" and report.features["carat"].method == "ks"
    # the statistic is scipy's, on the shares the test reported
    expected = jensenshannon(color.reference_share, color.current_share, base=2)
    assert color.statistic == pytest.approx(expected, rel=1e-12)
    assert color.pvalue is None and color.pvalue_adjusted is None
    assert color.effect_threshold == 0.05 and color.drifted and not cut.drifted
    assert color.reasons[0].startswith("js: JS=")
    d = report.to_dict()
    assert d["methods"] == {"numeric": "ks", "categorical": "js"}
    assert d["thresholds"]["tests"]["js"] == {"pvalue_threshold": None, "effect_threshold": 0.05}
    assert "js: effect &ge; 0.05" in render_html(report)


def test_custom_test_by_name_and_per_column(slices):
    ref, cur = slices
    register_test(JensenShannon(0.2))
    try:
        report = detect_drift(ref, cur, column_tests={"cut": "js", "carat": "wasserstein"})
    finally:
        unregister_test("js")
    assert report.features["cut"].method == "js" and report.features["color"].method == "psi+chi2"
    assert report.features["carat"].method == "wasserstein"
    assert "js" not in registered_tests()


def test_a_test_must_fit_the_kind(slices):
    with pytest.raises(ValueError, match="'js' applies to categorical columns, but 'carat'"):
        detect_drift(*slices, column_tests={"carat": JensenShannon()})
    with pytest.raises(ValueError, match="keyed by column kind"):
        detect_drift(*slices, tests={"carat": "wasserstein"})


def test_tests_without_pvalue_leave_the_correction(rng):
    n = 400
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    cur = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    ref.loc[:79, "a"] = np.nan
    report = detect_drift(ref, cur, tests={"numeric": "wasserstein"})
    a = report.features["a"]
    # the family is the one missing-rate test: no multiplier
    assert a.missing_pvalue_adjusted == pytest.approx(a.missing_pvalue, rel=1e-12)


def test_wasserstein_against_scipy(slices, rng):
    ref, cur = slices
    cur = apply_drift(cur, ["carat"], rng)
    report = detect_drift(ref, cur, tests={"numeric": "wasserstein"})
    for col in ["carat", "depth", "x"]:
        r, c = ref[col].to_numpy(), cur[col].to_numpy()
        expected = stats.wasserstein_distance(r, c) / np.std(r)
        f = report.features[col]
        assert f.statistic == pytest.approx(expected, rel=1e-9), col
        assert f.statistic_name == "W1/std" and f.pvalue is None
    assert report.drifted_features == ["carat"]


def test_wasserstein_power_and_false_alarms(diamonds):
    """Seed drift in carat is caught, same-population slices are not flagged (20 runs)."""
    caught = flagged = 0
    for rep in range(20):
        g = np.random.default_rng(500 + rep)
        ref = diamonds.iloc[g.choice(len(diamonds), 5000, replace=False)][["carat", "depth"]]
        cur = diamonds.iloc[g.choice(len(diamonds), 5000, replace=False)][["carat", "depth"]]
        flagged += detect_drift(ref, cur, tests={"numeric": "wasserstein"}).drifted
        drifted = apply_drift(cur, ["carat"], g)
        caught += (
            detect_drift(ref, drifted, tests={"numeric": "wasserstein"}).features["carat"].drifted
        )
    assert caught == 20 and flagged == 0


@pytest.mark.parametrize("seed", range(5))
def test_ks_and_wasserstein_from_summaries_match_scipy(seed):
    g = np.random.default_rng(seed)
    a = g.integers(0, 30, g.integers(1, 400)).astype(float)  # ties
    b = g.integers(5, 40, g.integers(1, 400)).astype(float)
    pa = ReferenceProfile.from_frame(pd.DataFrame({"v": a})).features["v"]
    pb = ReferenceProfile.from_frame(pd.DataFrame({"v": b})).features["v"]
    assert ks_between(pa, pb) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert wasserstein_between(pa, pb) == pytest.approx(
        stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-12
    )
    assert weighted_std(pa) == pytest.approx(np.std(a), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "effect,bound,p_adj,expected",
    [
        (0.06, 0.0, 0.01, True),
        (0.06, 0.011, 0.01, False),  # the bound could hide an effect below 0.05
        (0.06, 0.009, 0.01, True),
        (0.2, 0.0, 0.06, False),  # corrected p-value too large
        (0.2, 0.0, None, False),  # no p-value where one is required
    ],
)
def test_decision_rule_uses_the_error_bound(effect, bound, p_adj, expected):
    result = TestResult(
        statistic=effect,
        effect=effect,
        error_bound=bound,
        effect_threshold=0.05,
        pvalue=0.0,
        pvalue_threshold=0.05,
    )
    assert KSTest().decide(result, p_adj) is expected


def test_a_result_needs_some_threshold():
    with pytest.raises(ValueError, match="neither a p-value nor an effect threshold"):
        KSTest().decide(TestResult(statistic=1.0), 0.0)


def test_result_is_frozen():
    with pytest.raises(AttributeError):
        TestResult().statistic = 1.0


def test_all_missing_categorical_reference_is_no_data_not_a_crash():
    ref = pd.DataFrame({"c": pd.Series([None] * 10, dtype=object)})
    cur = pd.DataFrame({"c": ["a"] * 10})
    f = detect_drift(ref, cur, categorical=["c"]).features["c"]
    assert f.status == "no_data" and f.missing_drift and f.unseen_categories == ("a",)
    assert any("unseen" in r for r in f.reasons)
