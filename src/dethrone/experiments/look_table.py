"""What a look needs of the served rows: one row per (unit, arm), and the requests in order.

Every rule of :func:`~dethrone.experiments.rules.look` but one reads per-unit sums (rows,
errors, rows past the label window, labelled rows, their loss) and each unit's first time
(its place in arrival order), so the rows reduce to a :class:`UnitTable` of one row per
(unit, arm) before any rule runs. The reduction can run where the rows live
(:mod:`~dethrone.experiments.sql_look`: a ``GROUP BY`` in the database) or on rows in
memory (:func:`reduce_frame`); the decision on the table is the same code either way, so
both give the same outcome and interval.

The exception is the p99 latency guardrail: whether a request was slower than the
champion's p99 depends on every earlier request, so the table also keeps the requests
with a latency in served order (unit, arm, latency: 13 bytes a request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["GROUP_COLUMNS", "LATENCY_COLUMNS", "LookPlan", "UnitTable", "reduce_frame"]

#: one row per (unit, arm b): ``unit`` an integer code (the same in ``latency``), ``b``
#: True for arm B; ``t``/``t_eligible``/``t_labelled`` the first served time of all, of
#: the eligible (past the label window, not failed) and of the labelled rows; ``tie*``
#: break equal times (the first row's place: in served order for ``tie``, in the log for
#: the others); ``loss_sum`` the loss summed over the labelled rows
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
)
#: the requests with a latency, in served order
LATENCY_COLUMNS = ("unit", "b", "latency_ms")


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
    arm), in any order), ``latency`` (:data:`LATENCY_COLUMNS`, served order) and, in
    shadow mode, ``paired``: both arms' losses of each labelled request served by both
    (``loss_a``, ``loss_b``, ``unit``), in served order."""

    groups: pd.DataFrame
    latency: pd.DataFrame
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
    groups = _groups(frame, code, order)
    if "latency_ms" in frame:
        lat = frame["latency_ms"].to_numpy(float)[order]
        ok = ~np.isnan(lat)
        latency = pd.DataFrame(
            {
                "unit": code[order][ok],
                "b": frame["_b"].to_numpy(bool)[order][ok],
                "latency_ms": lat[ok],
            }
        )
    else:
        latency = pd.DataFrame({c: [] for c in LATENCY_COLUMNS})
    return UnitTable(groups, latency, _pairs(frame) if plan.shadow else None)


def _groups(frame: pd.DataFrame, code: np.ndarray, order: np.ndarray) -> pd.DataFrame:
    b = frame["_b"].to_numpy(bool)
    gid = pd.factorize(code * 2 + b)[0]
    elig = frame["_eligible"].to_numpy(bool)
    lab = frame["_labelled"].to_numpy(bool)
    served = frame["served_at"].to_numpy(float)
    pos = np.arange(len(frame), dtype=float)
    served_pos = np.empty(len(frame))
    served_pos[order] = pos
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
        }
    )
    sums = ("rows", "errors", "eligible", "labelled")
    how = {c: "sum" if c in sums else "min" for c in parts if c != "gid"}
    out = parts.groupby("gid", sort=False).agg({**how, "unit": "first", "b": "first"})
    # summed as decide_sequential sums a unit's losses (bincount, in the rows' order), so the
    # per-unit means, and so the interval, are the same to the last bit as before
    loss = np.where(lab, frame["loss"].to_numpy(float), 0.0)
    out["loss_sum"] = np.bincount(gid, weights=loss, minlength=len(out)) if len(gid) else 0.0
    return out.reset_index(drop=True)[list(GROUP_COLUMNS)]


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
