"""One look at a live experiment: the prediction log's rows, then the pure look.

The gateway logs every served row with its arm (``champion``/``challenger``/``shadow``), the
model version that scored it and the salt in force; labels arrive later through
``/feedback``. :func:`read_rows` reads the experiment's rows (its salt and versions, since
its start, labelled or not) with their proper losses. :func:`take_look` has the database
reduce them to one row per (unit, arm) where it can (:mod:`~dethrone.experiments.sql_look`:
numeric losses, A/B and guardrail phases), else reads them with :func:`read_rows`, and
hands the table to :func:`~dethrone.experiments.rules.decide`, where every rule of
validity lives, and :func:`look_record` turns the result into the
:class:`~dethrone.registry.records.Look` the MLflow run keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Text, and_, cast, or_, select

from dethrone.experiments.live_loss import live_losses, loss_for, loss_unit
from dethrone.experiments.look_table import LookPlan, reduce_frame
from dethrone.experiments.modes import CHALLENGER as CHALLENGER_ARM
from dethrone.experiments.modes import CHAMPION as CHAMPION_ARM
from dethrone.experiments.modes import SHADOW as SHADOW_ARM
from dethrone.experiments.modes import experiment_salt
from dethrone.experiments.rules import REQUIRED_COLUMNS, LookResult, decide, plan_look
from dethrone.experiments.sql_look import (
    SQL_DIALECTS,
    KeyCollision,
    reduce_in_database,
    supports,
)
from dethrone.registry.records import LiveExperiment, Look
from dethrone.settings import Settings
from dethrone.store.errors import unavailable_as_typed
from dethrone.store.schema import feedback, predictions


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


#: the columns of :func:`read_rows`, in order: the look's required columns, with its
#: optional ``latency_ms`` and ``error`` before the loss
ROW_COLUMNS = (*REQUIRED_COLUMNS[:-1], "latency_ms", "error", "loss")


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
        .where(*_served(rec, arms, salts))
        # the log's order: rows first served at the same time enter in it, as in the database
        .order_by(p.c.id)
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


def _served(rec: LiveExperiment, arms: list[tuple[str, str]], salts: tuple[str, ...]) -> list[Any]:
    """The conditions of :func:`read_rows`: since the start, by salt and (arm, version)."""
    p = predictions
    pairs = (and_(p.c.arm == arm, p.c.model_version == str(version)) for arm, version in arms)
    return [p.c.ts >= float(rec.started_at or 0.0), p.c.salt.in_(list(salts)), or_(*pairs)]


def logged_loss(
    engine: Any,
    rec: LiveExperiment,
    arms: list[tuple[str, str]],
    *,
    salts: tuple[str, ...],
    loss: str,
) -> tuple[bool, str]:
    """Whether any row of :func:`read_rows` exists, and the loss it would resolve ``loss``
    to (from the first 1,000 logged predictions), without reading the rows."""
    p = predictions
    logged = cast(p.c.prediction, Text)
    with unavailable_as_typed(), engine.connect() as conn:
        first = conn.execute(select(p.c.id).where(*_served(rec, arms, salts)).limit(1)).first()
        found = conn.execute(
            select(logged)
            .where(*_served(rec, arms, salts), p.c.prediction.is_not(None))
            .limit(1000)
        ).scalars()
        sample = [v for v in found if v not in (None, "null")]
    return first is not None, loss_for(loss, sample)


def phase_of(rec: LiveExperiment) -> tuple[list[tuple[str, str]], str]:
    """The (arm, version) pairs of ``rec``'s current phase and the salt its rows are logged
    with (the gateway's :func:`~dethrone.experiments.modes.experiment_salt` of the config's
    salt and the version on the challenger arm)."""
    if rec.state == "guardrail":  # the window re-randomises with its own salt
        return guardrail_arms(rec), experiment_salt(f"{rec.salt}-guard", rec.champion_version)
    return experiment_arms(rec), experiment_salt(rec.salt, rec.challenger_version)


def take_look(
    engine: Any, rec: LiveExperiment, settings: Settings, *, now: float, keep: bool = True
) -> tuple[LookResult, dict[str, Any]]:
    """One look at ``rec`` now; returns the result and the thresholds it used.

    ``keep``: where the database reduces the rows, fold those whose part became final
    into the sums kept between looks and read the rest (the default); else reduce every
    row and write nothing (:func:`~dethrone.experiments.sql_look.reduce_in_database`).

    The loss ``auto`` is resolved from what the experiment logged (absolute error for
    numbers, log loss for class probabilities); the caller freezes the resolved name and
    unit in the record at the first look with rows, so every later look uses the same.
    """
    arms, salt = phase_of(rec)
    frozen = dict(rec.thresholds or {})
    loss = str(frozen.get("loss") or settings.live_loss)
    if engine.dialect.name in SQL_DIALECTS:
        # the loss first (a sample of predictions), then the rows where they live, when
        # the database can compute that loss and the look needs no per-request pairs
        found, used = logged_loss(engine, rec, arms, salts=(salt,), loss=loss)
        plan = plan_look(_view(rec, frozen, found, used, salt, settings), settings, now=now)
        if supports(engine, plan):
            with contextlib.suppress(KeyCollision):  # (then read the rows, below)
                table = reduce_in_database(engine, plan, keep=keep)
                return decide(table, plan), plan_frozen(frozen, plan, found)
    rows, used = read_rows(engine, rec, arms, salts=(salt,), loss=loss)
    plan = plan_look(_view(rec, frozen, bool(len(rows)), used, salt, settings), settings, now=now)
    return decide(reduce_frame(rows, plan), plan), plan_frozen(frozen, plan, bool(len(rows)))


def _view(
    rec: LiveExperiment,
    frozen: dict[str, Any],
    found: bool,
    used: str,
    salt: str,
    settings: Settings,
) -> LiveExperiment:
    """The record as the look sees it: the logged salt, and the loss resolved once rows exist."""
    if found:
        frozen = {**frozen, "loss": used}
        frozen.setdefault("loss_unit", loss_unit(used, settings.target))
    return dataclasses.replace(rec, thresholds=frozen, salt=salt)


def plan_frozen(frozen: dict[str, Any], plan: LookPlan, found: bool) -> dict[str, Any]:
    """The thresholds to keep in the record: the resolved loss and unit once rows exist."""
    if not found:
        return frozen
    return {**frozen, "loss": plan.thresholds["loss"], "loss_unit": plan.thresholds["loss_unit"]}


def look_record(result: LookResult) -> Look:
    """The :class:`Look` an MLflow run keeps of ``result`` (arm A is the champion arm)."""
    a, b = result.arms
    return Look(
        time=result.now,
        phase=result.phase,
        units_a=a.labelled_units,
        units_b=b.labelled_units,
        rows_a=a.labelled_rows,
        rows_b=b.labelled_rows,
        ci_low=_num(result.ci_low),
        ci_high=_num(result.ci_high),
        pvalue=_num(result.pvalue),
        mean_a=_num(a.mean_loss),
        mean_b=_num(b.mean_loss),
        outcome=result.outcome,
    )


class PageLook:
    """A look as the experiment page stores it: the MLflow record's fields and every
    figure of the look's result."""

    def __init__(self, record: Look, result: LookResult) -> None:
        self.record, self.result = record, result

    def to_dict(self) -> dict[str, Any]:
        return {**self.record.to_dict(), **self.result.to_dict(), "time": self.result.now}


def _num(value: Any) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)
