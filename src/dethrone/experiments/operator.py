"""Operator actions on the live experiment: status, stop, promote, rollback (who and why).

Each action is recorded on the experiment (``action``: who, why, when) and is a no-op when
the experiment is already where the action leads, so a repeated command never promotes or
rolls back twice.
"""

from __future__ import annotations

from typing import Any

from dethrone.experiments.lifecycle import (
    ExperimentContext,
    ExperimentError,
    _all_to_champion,
    _finish_promotion,
    _finish_rollback,
    _promote,
    _record_decision,
    _rollback,
    _servable,
    _set,
    current,
)
from dethrone.experiments.lifecycle import _action as _make_action
from dethrone.experiments.state import log_engine
from dethrone.store.export import stats


def _require(ctx: ExperimentContext):
    rec = current(ctx)
    if rec is None:
        raise ExperimentError("no live experiment has been started")
    return rec


def _action(by: str, reason: str, name: str, ctx: ExperimentContext) -> dict[str, Any]:
    if not by:
        raise ValueError("by (who acts) must not be empty")
    return _make_action(ctx, name, by, reason)


def status(ctx: ExperimentContext) -> dict[str, Any]:
    """The experiment record with rows, labels and live loss per arm since it started."""
    rec = current(ctx)
    if rec is None:
        return {"experiment": None}
    arms = [a.to_dict() for a in stats(log_engine(ctx), since=rec.started_at)]
    return {"experiment": rec.to_dict(), "arms": arms}


def stop(ctx: ExperimentContext, *, by: str, reason: str) -> dict[str, Any]:
    """Stop: before a decision all traffic returns to the champion and the challenger's
    alias is removed; in the guardrail window the promotion is made final now."""
    rec = _require(ctx)
    action = _action(by, reason, "stop", ctx)
    if rec.state in ("starting", "running"):
        _record_decision(ctx, rec, None, "stopped")
        rec = _all_to_champion(ctx, rec, f"stop by {by}")
        rec = _set(
            ctx,
            rec,
            state="stopped",
            outcome="stopped",
            ended_at=ctx.clock(),
            action=action,
            reasons=[*rec.reasons, f"stopped by {by}: {reason}"],
        )
    elif rec.state == "guardrail":
        rec = _all_to_champion(ctx, rec, f"stop by {by}, promotion final")
        _servable(ctx, rec.champion_version, collecting=False)
        rec = _set(ctx, rec, state="promoted", ended_at=ctx.clock(), action=action)
    elif rec.state == "promoting":
        rec = _finish_promotion(ctx, rec)
    elif rec.state == "rolling-back":
        rec = _finish_rollback(ctx, rec)
    return rec.to_dict()


def promote(ctx: ExperimentContext, *, by: str, reason: str) -> dict[str, Any]:
    """Promote the running challenger now (operator decision, no test), with the
    guardrail window and holdback of an automatic promotion."""
    rec = _require(ctx)
    action = _action(by, reason, "promote", ctx)
    if rec.state == "running":
        rec = _promote(ctx, rec, None, by=action["by"], reason=reason)
    elif rec.state == "promoting":
        rec = _finish_promotion(ctx, rec)
    elif rec.state not in ("guardrail", "promoted"):
        raise ExperimentError(f"experiment {rec.id} is {rec.state}; nothing to promote")
    return rec.to_dict()


def rollback(ctx: ExperimentContext, *, by: str, reason: str) -> dict[str, Any]:
    """Undo the experiment's promotion: the previous champion serves all traffic again."""
    rec = _require(ctx)
    action = _action(by, reason, "rollback", ctx)
    if rec.state in ("guardrail", "promoted", "promoting"):
        rec = _rollback(ctx, rec, by=action["by"], reason=reason)
    elif rec.state == "rolling-back":
        rec = _finish_rollback(ctx, rec)
    elif rec.state != "rolled-back":
        raise ExperimentError(
            f"experiment {rec.id} is {rec.state}; its challenger was never promoted (use stop)"
        )
    return rec.to_dict()
