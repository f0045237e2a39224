"""What a look needs of the served rows: one row per (unit, arm).

Every rule of :func:`~dethrone.experiments.rules.look` reads per-unit sums (rows, errors,
rows past the label window, labelled rows, their loss, requests tested and found slow by
the p99 latency guardrail) and each unit's first times (its place in arrival order), so
the rows reduce to a :class:`UnitTable` of one row per (unit, arm) before any rule runs.
The reduction can run where the rows live (:mod:`~dethrone.experiments.sql_look`: a
``GROUP BY`` in the database, kept up to date between looks) or on rows in memory
(:func:`reduce_frame`); the decision on the table is the same code either way, so both
give the same outcome and interval.

The p99 latency guardrail compares each request with a cap fixed before it was served:
requests ``[2^k, 2^(k+1))`` in served order (every request of the look with a latency)
against the ``0.99`` quantile of the reference arm's requests before ``2^k``
(:func:`latency_caps`). A request's verdict is therefore final once the requests before
it are known, and a unit's count of tested and slow requests is a sum like the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dethrone.abtest.betting import FIRST_EPOCH

__all__ = [
    "GROUP_COLUMNS",
    "P99",
    "LookPlan",
    "UnitTable",
    "latency_caps",
    "linear_quantile",
    "reduce_frame",
]

#: the latency guardrail's quantile (and the arms' figure)
P99 = 0.99

#: one row per (unit, arm b): ``unit`` an integer code, ``b``
#: True for arm B; ``t``/``t_eligible``/``t_labelled`` the first served time of all, of
#: the eligible (past the label window, not failed) and of the labelled rows; ``tie*``
#: break equal times (the first row's place: in served order for ``tie``, in the log for
#: the others); ``loss_sum`` the loss summed over the labelled rows; ``latencies`` the
#: requests with a latency, ``tested`` those with a cap (:func:`latency_caps`), ``slow``
#: those above it, ``t_tested``/``tie_tested`` the first tested one's time and place (in
#: served order)
GROUP_COLUMNS = (
    "unit",
    "b",
    "rows",
    "errors",
    "t",
    "tie",
    "eligible",
    "t_eligible",
    "tie_eligible",
    "labelled",
    "t_labelled",
    "tie_labelled",
    "loss_sum",
    "latencies",
    "tested",
    "slow",
    "t_tested",
    "tie_tested",
)


@dataclass(frozen=True)
class LookPlan:
    """Which rows a look takes and how it judges them (from the record and the settings).

    ``since``: rows served at or after it enter (the start; the window's start in the
    guardrail phase); arm A is arm ``champion`` on ``version_a``, arm B one of ``arms_b``
    on ``version_b``; a row is eligible when served at or before ``eligible_until``.
    """

    thresholds: dict[str, Any]
    phase: str
    shadow: bool
    salt: str
    started: float
    start: float
    version_a: str
    version_b: str
    arms_b: tuple[str, ...]
    share_b: float
    label_window: float
    now: float

    @property
    def guardrail_phase(self) -> bool:
        return self.phase == "guardrail"

    @property
    def since(self) -> float:
        return max(self.started, self.start)

    @property
    def eligible_until(self) -> float:
        return self.now - self.label_window


@dataclass(frozen=True)
class UnitTable:
    """The reduced rows of a look: ``groups`` (:data:`GROUP_COLUMNS`, one row per (unit,
    arm), in any order), ``p99``: each arm's p99 latency over all its requests (arm A
    first; NaN without any) and, in shadow mode, ``paired``: both arms' losses of each
    labelled request served by both (``loss_a``, ``loss_b``, ``unit``), in served order."""

    groups: pd.DataFrame
    p99: tuple[float, float] = (math.nan, math.nan)
    paired: pd.DataFrame | None = None


def unit_keys(frame: pd.DataFrame) -> pd.Series:
    """A row's unit: its ``unit``, or its own ``request_id`` when it has none."""
    unit = frame["unit"]
    has = unit.notna() & (unit.astype(str) != "") & (unit.astype(str) != "None")
    return pd.Series(
        np.where(has, "u:" + unit.astype(str), "r:" + frame["request_id"].astype(str)),
        index=frame.index,
    )


def select_rows(rows: pd.DataFrame, plan: LookPlan) -> pd.DataFrame:
    """The rows of the plan's salt, time and (arm, version) pairs, with ``_b`` (arm B)."""
    frame = rows[(rows["salt"].astype(str) == str(plan.salt))]
    frame = frame[frame["served_at"].astype(float) >= plan.since]  # as the SQL path
    version = frame["model_version"].astype(str)
    in_a = (frame["arm"] == "champion") & (version == str(plan.version_a))
    in_b = frame["arm"].isin(plan.arms_b) & (version == str(plan.version_b))
    frame = frame[in_a | in_b].copy()
    frame["_b"] = in_b[in_a | in_b]
    frame["_unit"] = unit_keys(frame)
    frame["_error"] = frame["error"].fillna(False).astype(bool) if "error" in frame else False
    served_at = frame["served_at"].astype(float)
    labelled_at = frame["labelled_at"].astype(float)
    # errored rows have no prediction to label: the error guardrail counts them
    frame["_eligible"] = (served_at <= plan.eligible_until) & ~frame["_error"]
    frame["_labelled"] = (
        frame["_eligible"]
        & labelled_at.notna()
        & (labelled_at - served_at <= plan.label_window)
        & frame["loss"].notna()
    )
    return frame


def reduce_frame(rows: pd.DataFrame, plan: LookPlan) -> UnitTable:
    """The :class:`UnitTable` of rows in memory (the columns of
    :func:`~dethrone.experiments.rules.look`)."""
    frame = select_rows(rows, plan)
    code = pd.factorize(frame["_unit"])[0]
    served = frame["served_at"].to_numpy(float)
    order = np.argsort(served, kind="stable")
    b = frame["_b"].to_numpy(bool)
    lat = (
        frame["latency_ms"].to_numpy(float)
        if "latency_ms" in frame
        else np.full(len(frame), np.nan)
    )
    # the guardrail's verdict per request, in served order over every request of the look
    stream = order[~np.isnan(lat[order])]
    reference = b[stream] if plan.guardrail_phase else ~b[stream]
    over, tested = exceeds_reference(lat[stream], reference)
    tested_row, slow_row = np.zeros(len(frame), bool), np.zeros(len(frame), bool)
    tested_row[stream], slow_row[stream] = tested, over
    groups = _groups(frame, code, order, (~np.isnan(lat), tested_row, slow_row))
    p99 = tuple(_quantile(lat[stream][arm]) for arm in (~b[stream], b[stream]))
    return UnitTable(groups, (p99[0], p99[1]), _pairs(frame) if plan.shadow else None)


def _quantile(values: np.ndarray) -> float:
    return float(np.quantile(values, P99)) if values.size else math.nan


def _groups(
    frame: pd.DataFrame,
    code: np.ndarray,
    order: np.ndarray,
    latency: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> pd.DataFrame:
    b = frame["_b"].to_numpy(bool)
    gid = pd.factorize(code * 2 + b)[0]
    elig = frame["_eligible"].to_numpy(bool)
    lab = frame["_labelled"].to_numpy(bool)
    served = frame["served_at"].to_numpy(float)
    pos = np.arange(len(frame), dtype=float)
    served_pos = np.empty(len(frame))
    served_pos[order] = pos
    has, tested, slow = latency
    parts = pd.DataFrame(
        {
            "gid": gid,
            "unit": code,
            "b": b,
            "rows": 1,
            "errors": frame["_error"].to_numpy(bool).astype(int),
            "t": served,
            "tie": served_pos,
            "eligible": elig.astype(int),
            "t_eligible": np.where(elig, served, np.nan),
            "tie_eligible": np.where(elig, pos, np.nan),
            "labelled": lab.astype(int),
            "t_labelled": np.where(lab, served, np.nan),
            "tie_labelled": np.where(lab, pos, np.nan),
            "latencies": has.astype(int),
            "tested": tested.astype(int),
            "slow": slow.astype(int),
            "t_tested": np.where(tested, served, np.nan),
            "tie_tested": np.where(tested, served_pos, np.nan),
        }
    )
    sums = ("rows", "errors", "eligible", "labelled", "latencies", "tested", "slow")
    how = {c: "sum" if c in sums else "min" for c in parts if c != "gid"}
    out = parts.groupby("gid", sort=False).agg({**how, "unit": "first", "b": "first"})
    # summed as decide_sequential sums a unit's losses (bincount, in the rows' order), so the
    # per-unit means, and so the interval, are the same to the last bit as before
    loss = np.where(lab, frame["loss"].to_numpy(float), 0.0)
    out["loss_sum"] = np.bincount(gid, weights=loss, minlength=len(out)) if len(gid) else 0.0
    return out.reset_index(drop=True)[list(GROUP_COLUMNS)]


def latency_caps(
    values: np.ndarray, reference: np.ndarray, starts: list[int] | None = None
) -> dict[int, float | None]:
    """The guardrail's cap of each epoch: requests ``[s, 2s)`` (``s`` = 32, 64, ...; those
    before 32 are not tested) against the :data:`P99` (``higher``) of the ``reference``
    requests before ``s``, or their max when it is 0 (rare slowness); None (not tested)
    without a reference request before ``s`` or with a cap of 0. ``values`` in served
    order; ``starts``: the epochs wanted (default: every one that has requests)."""
    if starts is None:
        starts = _epoch_starts(values.size)
    caps: dict[int, float | None] = {}
    for start in starts:
        past = values[:start][reference[:start]]
        cap = None
        if past.size:
            q = float(np.quantile(past, P99, method="higher"))
            cap = q if q > 0 else float(past.max())
        caps[start] = cap if cap is not None and cap > 0 else None
    return caps


def _epoch_starts(n: int) -> list[int]:
    """The epochs with a request among the first ``n``."""
    out, start = [], FIRST_EPOCH
    while start < n:
        out.append(start)
        start *= 2
    return out


def exceeds_reference(values: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether each request (in served order) is above its epoch's cap, and which have
    one (:func:`latency_caps`): :func:`~dethrone.abtest.live_checks.exceeds_reference`
    without its copies of every request as floats (10^7 requests: 0.3 GB less)."""
    over, tested = np.zeros(values.size, bool), np.zeros(values.size, bool)
    for start, cap in latency_caps(values, reference).items():
        if cap is not None:
            tested[start : 2 * start] = True
            over[start : 2 * start] = values[start : 2 * start] > cap
    return over, tested


def linear_quantile(lower: float, upper: float, n: int, q: float) -> float:
    """``numpy.quantile(values, q)`` (method ``linear``) of ``n`` values from the two
    sorted values around its index, ``lower`` at ``floor((n - 1) q)`` and ``upper`` the
    next (equal to ``lower`` past the end): numpy's own arithmetic, so the same double.

    >>> v = np.array([3.0, 1.0, 4.0, 1.5, 9.0])
    >>> linear_quantile(3.0, 4.0, 5, 0.6) == np.quantile(v, 0.6)
    True
    """
    index = (n - 1) * q
    if index >= n - 1:
        return float(upper)
    gamma = float(np.float64(index) - np.floor(np.float64(index)))
    diff = np.float64(upper) - np.float64(lower)
    if gamma >= 0.5:
        return float(np.float64(upper) - diff * (1 - gamma))
    return float(np.float64(lower) + diff * gamma)


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    """Shadow mode: both models' losses on each labelled request both scored."""
    lab = frame[frame["_labelled"]]
    la, lb = lab[~lab["_b"]], lab[lab["_b"]]
    pairs = la.merge(lb, on=["request_id", "row"], suffixes=("_a", "_b"))
    pairs = pairs.sort_values("served_at_a", kind="stable")
    return pd.DataFrame(
        {
            "loss_a": pairs["loss_a"].to_numpy(float),
            "loss_b": pairs["loss_b"].to_numpy(float),
            "unit": pairs["_unit_a"].to_numpy(),
        }
    )
