"""look(): one test per rule, each failing without the rule (issue 17)."""

from __future__ import annotations

import doctest
import importlib
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from dethrone.experiments.rules import frozen_thresholds, look
from dethrone.settings import Settings

S = Settings()


def _rows(n=4000, share_b=0.5, effect=1.0, seed=0, **kw) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = rng.random(n) < share_b
    served = np.linspace(0, 3600, n)
    loss = rng.lognormal(0, 1, n) * np.where(b, effect, 1.0)
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "row": 0,
            "unit": [f"u{i}" for i in range(n)],
            "arm": np.where(b, "challenger", "champion"),
            "model_version": np.where(b, "2", "1"),
            "salt": "s1",
            "served_at": served,
            "labelled_at": served + 10,
            "loss": loss,
        }
    )
    for k, v in kw.items():
        frame[k] = v
    return frame


def _exp(state="running", split=0.5, **th) -> SimpleNamespace:
    thresholds = {"label_window": "1m", "min_duration": "1s"}
    thresholds.update(th)
    return SimpleNamespace(
        state=state,
        mode="ab",
        split=split,
        holdback=split,
        salt="s1",
        started_at=0.0,
        thresholds=thresholds,
        champion_version="1",
        challenger_version="2",
        window_until=None,
    )


NOW = 10_000.0


def test_docstring_examples_run() -> None:
    result = doctest.testmod(importlib.import_module("dethrone.experiments.rules"))
    assert result.attempted > 0 and result.failed == 0


def test_promotes_a_better_challenger_and_reasons_name_loss_and_unit() -> None:
    r = look(_rows(effect=0.6), _exp(), S, now=NOW)
    assert r.outcome == "promote" and r.ci_low > 0
    assert all(isinstance(x, str) for x in r.reasons)
    assert any("absolute_error" in x and "price units" in x for x in r.reasons)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["arms"][0]["model_version"] == "1" and d["arms"][1]["served_rows"] > 0
    assert d["srm_pvalue"] is not None and d["coverage"]["name"] == "label coverage"


def test_rows_by_salt_only() -> None:
    good = _rows(effect=1.0, seed=1)
    # rows of another salt: a much better "challenger" that must not count
    other = _rows(effect=0.3, seed=2).assign(salt="old")
    r = look(pd.concat([good, other]), _exp(), S, now=NOW)
    assert r.outcome != "promote"
    assert r.arms[0].served_rows + r.arms[1].served_rows == len(good)


def test_rows_without_unit_are_their_own_unit_never_per_row() -> None:
    rows = _rows()
    rows.loc[rows.index[::50], "unit"] = None
    r = look(rows, _exp(), S, now=NOW)
    assert r.arms[0].units + r.arms[1].units == len(rows)  # every row a unit
    assert r.decision is not None and r.decision["per_unit"]


def test_units_in_both_arms_counted_and_inconclusive_above_the_share() -> None:
    rows = _rows()
    shared = rows.index[:200]  # 5% of units served in both arms
    dup = rows.loc[shared].copy()
    dup["arm"] = np.where(dup["arm"] == "champion", "challenger", "champion")
    dup["model_version"] = np.where(dup["arm"] == "champion", "1", "2")
    dup["request_id"] = dup["request_id"] + "x"
    r = look(pd.concat([rows, dup]), _exp(), S, now=NOW)
    assert r.units_in_both_arms == 200 and r.outcome == "inconclusive"
    assert any("contamination" in x for x in r.reasons)
    r = look(pd.concat([rows, dup.iloc[:10]]), _exp(), S, now=NOW)  # 0.25%: allowed
    assert r.units_in_both_arms == 10 and r.outcome != "inconclusive"


def test_label_window_rows_too_young_do_not_enter() -> None:
    rows = _rows()
    r = look(rows, _exp(label_window="30m"), S, now=3600.0)
    assert r.arms[0].eligible_rows + r.arms[1].eligible_rows == pytest.approx(
        len(rows) / 2, rel=0.02
    )
    late = rows.assign(labelled_at=rows["served_at"] + 7200)  # labels after the window
    r = look(late, _exp(label_window="1h"), S, now=NOW)
    assert r.arms[0].labelled_rows == 0


def test_label_coverage_difference_is_inconclusive() -> None:
    rows = _rows(n=6000, seed=3)
    b = rows["arm"] == "challenger"
    worst = b & (rows["loss"] > rows.loc[b, "loss"].quantile(0.9))
    rng = np.random.default_rng(0)
    drop = worst & (rng.random(len(rows)) < 0.3)
    rows.loc[drop, ["labelled_at", "loss"]] = np.nan
    r = look(rows, _exp(), S, now=NOW)
    assert r.outcome == "inconclusive" and r.coverage.differs
    assert any("label coverage" in x for x in r.reasons[:1])


def test_thresholds_in_the_record_win_over_settings() -> None:
    rows = _rows(effect=0.6)
    r = look(rows, _exp(alpha=0.01, loss="squared_error"), S.replace(ab_alpha=0.2), now=NOW)
    assert r.thresholds["alpha"] == 0.01 and r.loss == "squared_error"
    assert r.thresholds["error_rate_margin"] == S.error_rate_margin  # absent: settings
    assert any("squared price units" in x for x in r.reasons)


def test_error_rate_guardrail_keeps_the_champion() -> None:
    rows = _rows(effect=0.6)
    rng = np.random.default_rng(4)
    b = rows["arm"] == "challenger"
    rows["error"] = rng.random(len(rows)) < np.where(b, 0.08, 0.005)
    r = look(rows, _exp(), S, now=NOW)
    assert r.guardrails["error_rate"].harm and r.outcome == "keep"


def test_shadow_failures_count_as_errors() -> None:
    rows = _rows(effect=0.6)
    rows["arm"] = np.where(rows["arm"] == "challenger", "shadow", "champion")
    exp = _exp()
    exp.mode = "shadow"
    rows["error"] = (rows["arm"] == "shadow") & (np.arange(len(rows)) % 5 == 0)
    r = look(rows, exp, S, now=NOW)
    assert r.arms[1].error_rate > 0.15


def test_latency_guardrail_keeps_the_champion() -> None:
    rows = _rows(effect=0.6)
    rng = np.random.default_rng(5)
    b = rows["arm"] == "challenger"
    rows["latency_ms"] = rng.lognormal(3, 0.3, len(rows)) * np.where(b, 1.6, 1.0)
    r = look(rows, _exp(), S, now=NOW)
    assert r.guardrails["latency_p99"].harm and r.outcome == "keep"


def test_finite_default_budget_ends_an_equal_challenger_with_keep() -> None:
    rows = _rows(n=3000, seed=6)
    r = look(rows, _exp(max_units_per_arm=1000), S, now=NOW)
    assert r.outcome == "keep" and any("no difference found" in x for x in r.reasons)
    assert S.live_max_units_per_arm > 0 and frozen_thresholds(S)["max_units_per_arm"] > 0


def test_minimum_duration_delays_promotion_but_never_keep() -> None:
    better, worse = _rows(effect=0.6), _rows(effect=1.6)
    assert look(better, _exp(min_duration="1d"), S, now=NOW).outcome == "continue"
    assert look(better, _exp(min_duration="1h"), S, now=NOW).outcome == "promote"
    assert look(worse, _exp(min_duration="1d"), S, now=NOW).outcome == "keep"


def test_guardrail_phase_rolls_back_a_worse_new_champion() -> None:
    # arm champion = new champion (version 2), arm challenger = holdback (version 1)
    rows = _rows(n=20000, share_b=0.05, seed=7).assign(
        model_version=lambda f: np.where(f["arm"] == "champion", "2", "1")
    )
    rows["loss"] = rows["loss"] * np.where(rows["arm"] == "champion", 1.6, 1.0)
    r = look(rows, _exp("guardrail", split=0.05), S, now=NOW)
    assert r.outcome == "rollback" and r.phase == "guardrail"


def test_guardrail_phase_srm_rolls_back_fail_safe() -> None:
    rows = _rows(n=20000, share_b=0.15, seed=8).assign(
        model_version=lambda f: np.where(f["arm"] == "champion", "2", "1")
    )
    r = look(rows, _exp("guardrail", split=0.05), S, now=NOW)
    assert r.outcome == "rollback" and any("sample ratio mismatch" in x for x in r.reasons)


def test_guardrail_phase_ends_final_when_the_holdback_has_its_units() -> None:
    rows = _rows(n=20000, share_b=0.05, seed=9).assign(
        model_version=lambda f: np.where(f["arm"] == "champion", "2", "1")
    )
    r = look(rows, _exp("guardrail", split=0.05, max_units_per_arm=500), S, now=NOW)
    assert r.outcome == "final"
    r = look(rows, _exp("guardrail", split=0.05), S, now=NOW)
    assert r.outcome == "continue"
    r = look(rows, _exp("guardrail", split=0.05, rollback_max_duration="1h"), S, now=NOW)
    assert r.outcome == "final"


def test_frozen_thresholds_cap_from_offline_losses_is_used() -> None:
    th = frozen_thresholds(S, np.arange(1, 1001.0))
    assert th["loss_cap"] == 996.0
    r = look(_rows(effect=0.6), _exp(loss_cap=3.0), S, now=NOW)
    assert r.loss_cap == 3.0


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="salt"):
        look(_rows().drop(columns="salt"), _exp(), S, now=NOW)
