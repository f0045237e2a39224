"""False alarms and power of detect_drift on messy data: missing values, many-level
categoricals, tied integers, nullable dtypes; real tables shipped from plotnine's wheel.

Same-population pairs are disjoint random draws from one table (or one generator), so
"no drift" is true by construction. 200 repetitions each: a rate of 5% gives at most
18 flags in 200 with probability 0.99 (binomial), which is the bound used below.
Measured before this test existed (commit c5e4408, missing-rate tests uncorrected, an
empty ``<unseen>`` reference cell): 4 normal columns with 20% MCAR missing values were
flagged in 18% / 22% / 20% / 9.5% of 200 runs at n = 100 / 150 / 300 / 1,000 per side,
and a 2,000-level Zipf column at 1,000 rows in 100%.
"""

import numpy as np
import pandas as pd
import pytest

from dethrone.drift import detect_drift
from dethrone.settings import Settings
from dethrone.slices.datasets import load_midwest, load_msleep, load_txhousing

pytestmark = pytest.mark.slow

REPS = 200
MAX_FLAGS = 18  # binomial(200, 0.05) 99% quantile
MIN_CAUGHT = 190  # power >= 95%
TX_NUMERIC = ["sales", "volume", "median", "listings", "inventory"]


@pytest.fixture(scope="module")
def settings():
    return Settings()


def _split(frame: pd.DataFrame, n: int, rng) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two disjoint random samples of n rows (n=None: two random halves)."""
    idx = rng.permutation(len(frame))
    n = n or len(frame) // 2
    return frame.iloc[idx[:n]], frame.iloc[idx[n : 2 * n]]


def _flags(pairs, settings, **kwargs) -> int:
    return sum(detect_drift(ref, cur, settings=settings, **kwargs).drifted for ref, cur in pairs)


def _zipf_labels(k: int = 2000):
    p = 1 / np.arange(1, k + 1)
    return np.array([f"z{i:05d}" for i in range(k)], dtype=object), p / p.sum()


@pytest.mark.parametrize("n", [100, 200, 400])
def test_mcar_missing_columns_hold_the_level(settings, n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(REPS, 2, n, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    pairs = [
        (pd.DataFrame(x[r, 0], columns=list("abcd")), pd.DataFrame(x[r, 1], columns=list("abcd")))
        for r in range(REPS)
    ]
    flagged = _flags(pairs, settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged at n={n}"


def test_mcar_simulation_sees_uncorrected_tests():
    # the same simulation with DRIFT_CORRECTION=none (8 tests at 5% each, as the missing-rate
    # tests were before) must fail the bound, or the test above could not see the issue
    rng = np.random.default_rng(100)
    x = rng.normal(size=(REPS, 2, 100, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    pairs = [
        (pd.DataFrame(x[r, 0], columns=list("abcd")), pd.DataFrame(x[r, 1], columns=list("abcd")))
        for r in range(REPS)
    ]
    flagged = _flags(pairs, Settings(drift_correction="none"))
    assert flagged > 2 * MAX_FLAGS, f"only {flagged}/{REPS} flagged without correction"


@pytest.mark.parametrize("n", [100, 200, 400])
def test_txhousing_missing_columns_hold_the_level(settings, n):
    tx = load_txhousing()[TX_NUMERIC]  # 7-17% missing, real
    rng = np.random.default_rng(10 + n)
    flagged = _flags((_split(tx, n, rng) for _ in range(REPS)), settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged at n={n}"


def test_mixed_dtypes_table_holds_the_level(settings):
    tx = load_txhousing().drop(columns=["date"])
    # tied integers (year, month), nullable integers with <NA>, float with NaN, categorical
    tx = tx.astype({"sales": "Int64", "listings": "Int64", "volume": "Float64"})
    tx["big_city"] = tx["city"].isin(["Houston", "Dallas", "Austin", "San Antonio"])
    rng = np.random.default_rng(3)
    flagged = _flags((_split(tx, 1000, rng) for _ in range(REPS)), settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged"


def test_zipf_2000_levels_at_1000_rows_holds_the_level(settings):
    labels, p = _zipf_labels()
    rng = np.random.default_rng(4)
    codes = rng.choice(len(labels), size=(REPS, 2, 1000), p=p)
    pairs = [
        (pd.DataFrame({"zip": labels[codes[r, 0]]}), pd.DataFrame({"zip": labels[codes[r, 1]]}))
        for r in range(REPS)
    ]
    flagged = _flags(pairs, settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged"


def test_nearly_unique_column_holds_the_level(settings):
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 3000, size=(REPS, 2, 80))  # about 77-79 levels in 80 rows
    assert np.median([len(np.unique(c)) for c in codes[:, 0]]) >= 77
    labels = np.array([f"id{i}" for i in range(3000)], dtype=object)
    pairs = [
        (
            pd.DataFrame({"id": labels[codes[r, 0]], "x": rng.normal(size=80)}),
            pd.DataFrame({"id": labels[codes[r, 1]], "x": rng.normal(size=80)}),
        )
        for r in range(REPS)
    ]
    flagged = _flags(pairs, settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged"


@pytest.mark.parametrize(
    "table,column",
    [
        ("midwest", "county"),  # 320 county names in 437 rows: 218 vs 219 rows
        ("msleep", "genus"),  # 77 genera in 83 rows: 41 vs 42 rows
    ],
)
def test_real_many_level_column_holds_the_level(settings, table, column):
    frame = {"midwest": load_midwest, "msleep": load_msleep}[table]()
    rng = np.random.default_rng(6)
    flagged = _flags((_split(frame, None, rng) for _ in range(REPS)), settings, features=[column])
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged"


def test_real_many_level_table_all_columns_hold_the_level(settings):
    frame = load_midwest().drop(columns=["PID"])  # 27 columns, 3 categorical
    rng = np.random.default_rng(7)
    flagged = _flags((_split(frame, None, rng) for _ in range(REPS)), settings)
    assert flagged <= MAX_FLAGS, f"{flagged}/{REPS} flagged"


@pytest.mark.parametrize("change", ["reversed", "new_30pct"])
def test_category_mix_change_is_caught(settings, change):
    labels, p = _zipf_labels()
    rng = np.random.default_rng(8)
    ref_codes = rng.choice(len(labels), size=(REPS, 1000), p=p)
    cur_codes = rng.choice(len(labels), size=(REPS, 1000), p=p[::-1] if change == "reversed" else p)
    caught = 0
    for r in range(REPS):
        cur = labels[cur_codes[r]].copy()
        if change == "new_30pct":  # 30% of rows get categories never seen before
            new = rng.random(1000) < 0.3
            cur[new] = [f"new{i}" for i in rng.integers(0, 5000, new.sum())]
        report = detect_drift(
            pd.DataFrame({"zip": labels[ref_codes[r]]}),
            pd.DataFrame({"zip": cur}),
            settings=settings,
        )
        caught += report.drifted
    assert caught >= MIN_CAUGHT, f"{change} caught in {caught}/{REPS}"


def test_missing_rate_jump_of_15_points_is_caught(settings):
    tx = load_txhousing()[TX_NUMERIC]
    rng = np.random.default_rng(9)
    caught = 0
    for _ in range(REPS):
        ref, cur = _split(tx, 2000, rng)
        cur = cur.copy()
        observed = np.flatnonzero(cur["median"].notna().to_numpy())
        hide = rng.choice(observed, 300, replace=False)  # 7% -> 22% missing
        cur.iloc[hide, cur.columns.get_loc("median")] = np.nan
        report = detect_drift(ref, cur, settings=settings)
        caught += report.features["median"].missing_drift and report.drifted
    assert caught >= MIN_CAUGHT, f"caught in {caught}/{REPS}"
