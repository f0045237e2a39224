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

import numpy as np
import pandas as pd
from sqlalchemy import Text, and_, cast, or_, select

from dethrone.experiments.modes import CHALLENGER as CHALLENGER_ARM
from dethrone.experiments.modes import CHAMPION as CHAMPION_ARM
from dethrone.experiments.modes import SHADOW as SHADOW_ARM
from dethrone.experiments.modes import serving_mode
from dethrone.registry.records import LiveExperiment, Look
from dethrone.settings import Settings
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import feedback, predictions


def read_log(engine: Any, rec: LiveExperiment, arms: list[tuple[str, str]]) -> pd.DataFrame:
    """The labelled rows logged since ``rec`` started on the given (arm, model version) pairs.

    The same rows and the same ``loss`` as :func:`dethrone.store.export.joined_predictions`
    (absolute error for numbers, 0/1 for classes), read leanly: only labelled rows of the
    experiment's arms and the seven columns a look needs, numbers parsed column-wise; a
    look at 10^6 rows is a few seconds instead of the export's twenty.
    """
    p, f = predictions, feedback
    query = (
        select(
            p.c.request_id,
            p.c.row,
            p.c.arm,
            p.c.unit,
            p.c.model_version,
            cast(p.c.prediction, Text),
            cast(f.c.label, Text),
        )
        .select_from(p.join(f, and_(f.c.request_id == p.c.request_id, f.c.row == p.c.row)))
        .where(
            p.c.ts >= float(rec.started_at or 0.0),
            or_(
                *(and_(p.c.arm == arm, p.c.model_version == str(version)) for arm, version in arms)
            ),
        )
    )
    with unavailable_as_typed(), engine.connect() as conn:
        # The driver's rows as they are (every column is text or an integer already):
        # SQLAlchemy's Row objects and pandas' per-column inference cost more than the query.
        rows = conn.execute(query).cursor.fetchall()
    table = np.array(rows, dtype=object).reshape(len(rows), 7)
    frame = pd.DataFrame(
        {
            name: table[:, i]
            for i, name in enumerate(["request_id", "row", "arm", "unit", "model_version"])
        }
    )
    frame["loss"] = _losses(table[:, 5], table[:, 6])
    return frame


def _numbers(text: np.ndarray) -> np.ndarray:
    try:
        return text.astype(float)  # all plain JSON numbers: float() per value, in C
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(text), errors="coerce").to_numpy(float)


def _losses(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    from dethrone.store.export import _cls, _decode  # the log's own class rules

    loss = np.abs(_numbers(pred) - _numbers(label))
    other = np.isnan(loss)
    if other.any():  # classes, probabilities, booleans: 0/1 loss of the (most probable) class
        pc = _cls([_decode(t) for t in pred[other]])
        lc = _cls([_decode(t) for t in label[other]])
        loss[other] = (pc.to_numpy() != lc.to_numpy()).astype(float)
    return loss


def _arm(frame: pd.DataFrame, arm: str | tuple[str, ...], version: str) -> pd.DataFrame:
    arms = (arm,) if isinstance(arm, str) else arm
    return frame[frame["arm"].isin(arms) & (frame["model_version"].astype(str) == str(version))]


def _units(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, Any]:
    # Per-unit analysis only when every row has a unit; a row without one is its own unit
    # in the router too (random assignment), so mixing the two would mis-weight it.
    if len(a) and len(b) and a["unit"].notna().all() and b["unit"].notna().all():
        return {
            "units_a": a["unit"].astype(str).to_numpy(),
            "units_b": b["unit"].astype(str).to_numpy(),
        }
    return {}


def decide_arms(
    a: pd.DataFrame, b: pd.DataFrame, *, expected_share_a: float, settings: Settings
) -> Any:
    """``decide_sequential`` of arm ``a`` (the reference) against arm ``b``.

    ``None`` while an arm has no labelled row yet.
    """
    from dethrone.abtest import decide_sequential

    if len(a) == 0 or len(b) == 0:
        return None
    return decide_sequential(
        a["loss"].to_numpy(float),
        b["loss"].to_numpy(float),
        expected_share_a=expected_share_a,
        settings=settings,
        **_units(a, b),
    )


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


def experiment_arms(rec: LiveExperiment) -> list[tuple[str, str]]:
    """(arm, version) pairs of the experiment phase."""
    return [
        (CHAMPION_ARM, rec.champion_version),
        (CHALLENGER_ARM, rec.challenger_version),
        (SHADOW_ARM, rec.challenger_version),
    ]


def guardrail_arms(rec: LiveExperiment) -> list[tuple[str, str]]:
    """(arm, version) pairs of the guardrail window: new champion, holdback."""
    return [(CHAMPION_ARM, rec.challenger_version), (CHALLENGER_ARM, rec.champion_version)]


def experiment_decision(frame: pd.DataFrame, rec: LiveExperiment, settings: Settings) -> Any:
    """The decision of the running experiment: champion (A) against challenger (B)."""
    champ = _arm(frame, CHAMPION_ARM, rec.champion_version)
    mode = serving_mode(rec.mode)
    if mode.paired:  # the challenger's unserved predictions: either arm name
        chall = _arm(frame, mode.challenger_arms, rec.challenger_version)
        return decide_shadow(champ, chall, settings=settings)
    chall = _arm(frame, CHALLENGER_ARM, rec.challenger_version)
    return decide_arms(champ, chall, expected_share_a=1.0 - float(rec.split), settings=settings)


def guardrail_decision(frame: pd.DataFrame, rec: LiveExperiment, settings: Settings) -> Any:
    """New champion (A) against the holdback on the previous one (B) after a promotion.

    ``promote`` here means the previous champion is significantly better: roll back.
    """
    new = _arm(frame, CHAMPION_ARM, rec.challenger_version)
    old = _arm(frame, CHALLENGER_ARM, rec.champion_version)
    return decide_arms(new, old, expected_share_a=1.0 - float(rec.holdback), settings=settings)


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
    return Look(
        time=now,
        phase=phase,
        units_a=decision.units_a,
        units_b=decision.units_b,
        rows_a=decision.rows_a,
        rows_b=decision.rows_b,
        ci_low=_num(decision.ci_low),
        ci_high=_num(decision.ci_high),
        pvalue=_num(decision.pvalue),
        mean_a=_num(decision.mean_a),
        mean_b=_num(decision.mean_b),
        outcome=decision.outcome,
    )


#: the columns of :func:`read_rows`, in order (what ``dethrone.experiments.look`` reads)
ROW_COLUMNS = (
    "request_id",
    "row",
    "unit",
    "arm",
    "model_version",
    "salt",
    "served_at",
    "labelled_at",
    "latency_ms",
    "error",
    "loss",
)


def read_rows(
    engine: Any,
    rec: LiveExperiment,
    arms: list[tuple[str, str]],
    *,
    salts: tuple[str, ...],
    loss: str,
) -> tuple[pd.DataFrame, str]:
    """Every row served since ``rec`` started on the given (arm, version) pairs and salts,
    labelled or not, with its proper ``loss`` (NaN until labelled).

    Rows logged under another salt (served before a worker applied the experiment's
    config, or by another experiment) never enter. A row whose prediction failed is logged
    without a prediction: ``error`` is True and its loss NaN. Returns the frame and the
    loss used (``loss`` resolved when it is ``auto``).
    """
    from dethrone.experiments.live_loss import live_losses, loss_for

    p, f = predictions, feedback
    query = (
        select(
            p.c.request_id,
            p.c.row,
            p.c.unit,
            p.c.arm,
            p.c.model_version,
            p.c.salt,
            p.c.ts,
            f.c.received_at,
            p.c.latency_ms,
            cast(p.c.prediction, Text),
            cast(f.c.label, Text),
        )
        .select_from(p.outerjoin(f, and_(f.c.request_id == p.c.request_id, f.c.row == p.c.row)))
        .where(
            p.c.ts >= float(rec.started_at or 0.0),
            p.c.salt.in_(list(salts)),
            or_(
                *(and_(p.c.arm == arm, p.c.model_version == str(version)) for arm, version in arms)
            ),
        )
    )
    with unavailable_as_typed(), engine.connect() as conn:
        rows = conn.execute(query).cursor.fetchall()
    table = np.array(rows, dtype=object).reshape(len(rows), 11)
    frame = pd.DataFrame({name: table[:, i] for i, name in enumerate(ROW_COLUMNS[:9])})
    for name in ("served_at", "labelled_at", "latency_ms"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    frame["row"] = frame["row"].astype(int)
    pred, label = table[:, 9], table[:, 10]
    frame["error"] = np.array([v is None or v == "null" for v in pred], dtype=bool)
    used = loss_for(loss, [v for v in pred[:1000] if v not in (None, "null")])
    labelled = np.array([v is not None for v in label], dtype=bool)
    values = np.full(len(frame), np.nan)
    if labelled.any():
        values[labelled] = live_losses(list(pred[labelled]), list(label[labelled]), used)
    frame["loss"] = values
    return frame, used
