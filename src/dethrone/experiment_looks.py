"""One look at a live experiment: the joined prediction log → per-arm losses → a decision.

The gateway logs every served row with its arm (``champion``/``challenger``) and the model
version that scored it; labels arrive later through ``/feedback``. A look keeps the rows of
the experiment's own versions per arm, so rows of an earlier experiment, of the guardrail
window after a promotion, or of a swap in between never enter the comparison.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from dethrone.records import LiveExperiment, Look
from dethrone.settings import Settings

#: arms as the gateway logs them
CHAMPION_ARM, CHALLENGER_ARM, SHADOW_ARM = "champion", "challenger", "shadow"
_COLUMNS = ["request_id", "row", "arm", "served", "unit", "model_version", "loss"]


def read_log(engine: Any, rec: LiveExperiment) -> pd.DataFrame:
    """The labelled rows logged since ``rec`` started (only the columns a look needs)."""
    from dethrone.store.export import joined_predictions

    frame = joined_predictions(engine, since=rec.started_at)
    return frame.loc[frame["loss"].notna(), _COLUMNS]


def _arm(frame: pd.DataFrame, arm: str | tuple[str, ...], version: str) -> pd.DataFrame:
    arms = (arm,) if isinstance(arm, str) else arm
    return frame[frame["arm"].isin(arms) & (frame["model_version"].astype(str) == str(version))]


def _units(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    # Per-unit analysis only when every row has a unit; a row without one is its own unit
    # in the router too (random assignment), so mixing the two would mis-weight it.
    if len(a) and len(b) and a["unit"].notna().all() and b["unit"].notna().all():
        return {"units_a": a["unit"].astype(str).to_numpy(),
                "units_b": b["unit"].astype(str).to_numpy()}
    return {}


def decide_arms(a: pd.DataFrame, b: pd.DataFrame, *, expected_share_a: float,
                settings: Settings) -> Any:
    """``decide_sequential`` of arm ``a`` (the reference) against arm ``b``.

    ``None`` while an arm has no labelled row yet.
    """
    from dethrone.abtest import decide_sequential

    if len(a) == 0 or len(b) == 0:
        return None
    return decide_sequential(a["loss"].to_numpy(float), b["loss"].to_numpy(float),
                             expected_share_a=expected_share_a, settings=settings,
                             **_units(a, b))


def decide_shadow(champ: pd.DataFrame, chall: pd.DataFrame, *, settings: Settings) -> Any:
    """Paired decision: both models' losses on the same served rows (shadow mode)."""
    from dethrone.abtest import decide_sequential

    pairs = champ.merge(chall, on=["request_id", "row"], suffixes=("_a", "_b"))
    if len(pairs) == 0:
        return None
    paired = [pairs["loss_a"].to_numpy(float), pairs["loss_b"].to_numpy(float)]
    if pairs["unit_a"].notna().all():
        paired.append(pairs["unit_a"].astype(str).to_numpy())
    return decide_sequential([], [], expected_share_a=0.5, paired=paired, settings=settings)


def experiment_decision(frame: pd.DataFrame, rec: LiveExperiment, settings: Settings) -> Any:
    """The decision of the running experiment: champion (A) against challenger (B)."""
    champ = _arm(frame, CHAMPION_ARM, rec.champion_version)
    if rec.mode == "shadow":  # the challenger's unserved predictions: either arm name
        chall = _arm(frame, (CHALLENGER_ARM, SHADOW_ARM), rec.challenger_version)
        return decide_shadow(champ, chall, settings=settings)
    chall = _arm(frame, CHALLENGER_ARM, rec.challenger_version)
    return decide_arms(champ, chall, expected_share_a=1.0 - float(rec.split),
                       settings=settings)


def guardrail_decision(frame: pd.DataFrame, rec: LiveExperiment, settings: Settings) -> Any:
    """New champion (A) against the holdback on the previous one (B) after a promotion.

    ``promote`` here means the previous champion is significantly better: roll back.
    """
    new = _arm(frame, CHAMPION_ARM, rec.challenger_version)
    old = _arm(frame, CHALLENGER_ARM, rec.champion_version)
    return decide_arms(new, old, expected_share_a=1.0 - float(rec.holdback),
                       settings=settings)


def srm_failed(decision: Any) -> bool:
    """Whether an ``inconclusive`` decision is final (a broken split), not "too few units"."""
    return decision is not None and decision.srm is not None and bool(decision.srm.mismatch)


def _num(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def look_of(decision: Any, *, phase: str, now: float | None = None) -> Look:
    """The :class:`Look` record of one decision (``None``: no labelled rows yet)."""
    now = time.time() if now is None else now
    if decision is None:
        return Look(time=now, phase=phase, outcome="continue")
    return Look(time=now, phase=phase,
                units_a=decision.units_a, units_b=decision.units_b, rows_a=decision.rows_a,
                rows_b=decision.rows_b, ci_low=_num(decision.ci_low),
                ci_high=_num(decision.ci_high), pvalue=_num(decision.pvalue),
                mean_a=_num(decision.mean_a), mean_b=_num(decision.mean_b),
                outcome=decision.outcome)
