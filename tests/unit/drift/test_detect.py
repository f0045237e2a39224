"""detect_drift: verdicts, report contents and edge cases."""

import json

import numpy as np
import pandas as pd
import pytest

from dethrone.drift import DriftReport, ReferenceProfile, detect_drift, render_html
from dethrone.drift import statistics as st
from dethrone.settings import Settings
from dethrone.slices.injection import apply_drift

FEATURES = ["carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z"]


@pytest.fixture
def settings():
    return Settings()


@pytest.fixture
def slices(diamonds, rng):
    ref = diamonds.iloc[rng.choice(len(diamonds), 5000, replace=False)][FEATURES]
    cur = diamonds.iloc[rng.choice(len(diamonds), 5000, replace=False)][FEATURES]
    return ref.reset_index(drop=True), cur.reset_index(drop=True)


def test_report_shape_and_json(slices, settings, rng):
    ref, cur = slices
    report = detect_drift(ref, apply_drift(cur, ["carat", "color"], rng), settings=settings)
    assert isinstance(report, DriftReport)
    assert report.drifted and report.drifted_features == ["carat", "color"]
    carat, color = report.features["carat"], report.features["color"]
    assert carat.method == "ks" and carat.pvalue is not None and carat.psi > 0
    assert color.method == "psi+chi2" and color.psi >= settings.psi_threshold
    assert carat.n_reference == 5000 and carat.n_current == 5000
    d = json.loads(json.dumps(report.to_dict()))
    assert d["thresholds"]["ks_pvalue_threshold"] == 0.05
    assert d["methods"] == {"numeric": "ks", "categorical": "psi+chi2"}
    assert d["features"]["color"]["drifted"] is True
    assert "random_state" in d and d["n_current"] == 5000
    page = render_html(report)
    assert "<svg" in page and "carat" in page and "DRIFT" in page


def test_profile_gives_same_report(slices, settings, rng, tmp_path):
    ref, cur = slices
    cur = apply_drift(cur, ["depth"], rng)
    from_frame = detect_drift(ref, cur, settings=settings)
    path = ReferenceProfile.from_frame(ref, settings=settings).save(tmp_path / "p.npz")
    from_profile = detect_drift(ReferenceProfile.load(path), cur, settings=settings)
    a, b = from_frame.to_dict(), from_profile.to_dict()
    a.pop("created_at"), b.pop("created_at")
    assert a == b


def test_per_call_override_changes_threshold(slices, settings):
    ref, cur = slices
    report = detect_drift(ref, cur, settings=settings, psi_threshold=0.3, ks_min_effect=0.2)
    assert report.thresholds["psi_threshold"] == 0.3
    assert report.features["color"].threshold == 0.3


def test_unknown_override_is_an_error(slices, settings):
    with pytest.raises(ValueError, match="unknown setting 'psi_treshold'"):
        detect_drift(*slices, settings=settings, psi_treshold=0.3)


def test_numeric_column_as_categorical(slices, settings):
    ref, cur = slices
    report = detect_drift(ref, cur, categorical=["table"], settings=settings)
    assert report.features["table"].method == "psi+chi2"


# --- edge cases -------------------------------------------------------------------


@pytest.mark.parametrize("which", ["reference", "current"])
def test_empty_frame_is_a_clear_error(slices, settings, which):
    ref, cur = slices
    args = (ref.iloc[:0], cur) if which == "reference" else (ref, cur.iloc[:0])
    with pytest.raises(ValueError, match=f"{which} is empty"):
        detect_drift(*args, settings=settings)


def test_not_a_frame(settings):
    with pytest.raises(ValueError, match="DataFrame"):
        detect_drift([1, 2, 3], pd.DataFrame({"a": [1]}), settings=settings)


def test_single_row_current(slices, settings):
    ref, cur = slices
    report = detect_drift(ref, cur.iloc[:1], settings=settings)
    carat = report.features["carat"]
    assert carat.n_current == 1 and 0.0 <= carat.pvalue <= 1.0
    assert carat.status == "ok"


def test_all_nan_current_column_is_missing_drift(slices, settings):
    ref, cur = slices
    cur = cur.assign(depth=np.nan)
    f = detect_drift(ref, cur, settings=settings).features["depth"]
    assert f.status == "no_data" and f.pvalue is None and f.statistic is None
    assert f.drifted and f.missing_drift and f.missing_rate_current == 1.0


def test_all_nan_on_both_sides_is_not_drift(settings):
    ref = pd.DataFrame({"a": [np.nan] * 10, "b": np.arange(10.0)})
    f = detect_drift(ref, ref.copy(), settings=settings).features["a"]
    assert f.status == "no_data" and not f.drifted


def test_some_missing_values_compared_separately(slices, settings, rng):
    ref, cur = slices
    cur = apply_drift(cur, {"x": None}, rng)  # distribution drift, no missing
    from dethrone.slices.injection import DriftSpec

    cur = apply_drift(cur, {"table": DriftSpec("missing", 0.2)}, rng)
    report = detect_drift(ref, cur, settings=settings)
    table = report.features["table"]
    assert table.missing_drift and table.missing_rate_current == pytest.approx(0.2, abs=0.03)
    assert table.n_current == 5000
    assert not report.features["x"].missing_drift


@pytest.mark.parametrize("ref_value,cur_value,drift", [(1.0, 1.0, False), (1.0, 2.0, True)])
def test_constant_column(settings, ref_value, cur_value, drift):
    ref = pd.DataFrame({"c": np.full(500, ref_value)})
    cur = pd.DataFrame({"c": np.full(400, cur_value)})
    f = detect_drift(ref, cur, settings=settings).features["c"]
    assert f.status == "constant" and f.drifted is drift
    assert f.statistic == pytest.approx(0.0 if not drift else 1.0)


def test_unseen_category(slices, settings):
    ref, cur = slices
    cur = cur.copy()
    cur["color"] = cur["color"].astype(str)
    cur.loc[:999, "color"] = "Z"  # 20% of rows get a colour the reference never had
    f = detect_drift(ref, cur, settings=settings).features["color"]
    assert f.unseen_categories == ("Z",)
    assert f.bins[-1] == "<unseen>" and f.current_share[-1] == pytest.approx(0.2)
    assert np.isfinite(f.psi) and f.drifted
    assert any("unseen" in r for r in f.reasons)


def test_missing_column_is_reported_not_dropped(slices, settings):
    ref, cur = slices
    report = detect_drift(ref, cur.drop(columns=["z"]).assign(extra=1), settings=settings)
    assert report.missing_columns == ("z",) and report.extra_columns == ("extra",)
    assert report.features["z"].status == "missing_column" and report.drifted


def test_explicit_feature_absent_is_a_clear_error(slices, settings):
    ref, cur = slices
    with pytest.raises(ValueError, match="'z' is not a column of the current"):
        detect_drift(ref, cur.drop(columns=["z"]), features=["carat", "z"], settings=settings)


def test_type_mismatch_names_the_column(slices, settings):
    ref, cur = slices
    with pytest.raises(ValueError, match="'carat'"):
        detect_drift(ref, cur.assign(carat=cur["carat"].astype(str)), settings=settings)


def test_datetime_column_is_a_clear_error(settings):
    ref = pd.DataFrame({"t": pd.date_range("2026-01-01", periods=5)})
    with pytest.raises(ValueError, match="'t'"):
        detect_drift(ref, ref, settings=settings)


def test_constant_reference_psi_sees_new_values(settings):
    ref = pd.DataFrame({"c": np.full(500, 1.0)})
    cur = pd.DataFrame({"c": np.r_[np.full(200, 1.0), np.full(200, 2.0)]})
    f = detect_drift(ref, cur, settings=settings).features["c"]
    assert f.bins == ("< 1", "= 1", "> 1") and f.current_share == (0.0, 0.5, 0.5)
    # floored shares: (0.5-1)ln(0.5) + (0.5-1e-4)ln(0.5/1e-4); the first bin adds 0
    expected = -0.5 * np.log(0.5) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    assert f.psi == pytest.approx(expected, rel=1e-12) and f.drifted


def test_constant_categorical_reference_psi_sees_new_values(settings):
    ref = pd.DataFrame({"c": ["a"] * 500})
    cur = pd.DataFrame({"c": ["a"] * 200 + ["b"] * 200})
    f = detect_drift(ref, cur, settings=settings).features["c"]
    assert f.psi > 1 and f.drifted and f.bins == ("a", "<unseen>")


def test_missing_rate_tests_share_the_correction(settings, rng):
    n = 300
    ref = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    cur = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    ref.loc[:59, "a"] = np.nan  # 20% missing on both sides
    cur.loc[:44, "a"] = np.nan  # 15%
    report = detect_drift(ref, cur, settings=settings)
    a, b = report.features["a"], report.features["b"]
    # family: KS(a), KS(b), missing(a) -> Holm multiplies the smallest p-value by 3
    assert settings.drift_correction == "holm"
    holm = st.adjust_pvalues([a.pvalue, b.pvalue, a.missing_pvalue], "holm")
    assert a.missing_pvalue_adjusted == pytest.approx(holm[2], rel=1e-12)
    assert a.pvalue_adjusted == pytest.approx(holm[0], rel=1e-12)
    assert b.missing_pvalue_adjusted is None and b.missing_pvalue == 1.0
    assert a.missing_pvalue_adjusted >= a.missing_pvalue


def test_real_missing_rate_shift_is_flagged(settings):
    from dethrone.slices.datasets import load_txhousing

    tx = load_txhousing()  # sales is missing in 17% of 2000-2002 rows, 0.1% of 2011-2014
    ref, cur = tx[tx.year <= 2002], tx[(tx.year >= 2011) & (tx.year <= 2014)]
    f = detect_drift(ref, cur, features=["sales"], settings=settings).features["sales"]
    assert f.missing_rate_reference > 0.15 and f.missing_rate_current < 0.005
    assert f.missing_drift and f.missing_pvalue_adjusted < 1e-10
    assert any("missing rate changed" in r for r in f.reasons)


def test_unseen_categories_reason_has_good_turing_expectation(settings):
    ref = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + [f"r{i}" for i in range(20)]})
    cur = pd.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + [f"n{i}" for i in range(20)]})
    f = detect_drift(ref, cur, settings=settings).features["c"]
    # 20 singletons of 100 rows: 20% expected unseen, 20% seen -> the mix is the same
    assert "20.0% of rows; Good-Turing expects 20.0%" in " ".join(f.reasons)
    assert not f.drifted and f.pvalue == pytest.approx(1.0)
