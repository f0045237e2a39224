"""Live experiments: start, look, promote with a guardrail window, roll back, stop.

The experiment is a small state machine stored as :class:`~dethrone.registry.records.LiveExperiment`
tags on the registered model (one experiment at a time) and mirrored on its MLflow run::

    starting → running ─┬─ promoting → guardrail ─┬─ promoted
                        │                          └─ rolling-back → rolled-back
                        ├─ kept | inconclusive | stopped

Every transition is written *before* the registry and the router are changed, and every
step after it is idempotent (aliases are set, not toggled; the router gets whole serving
fields), so a retried or re-run task finishes what an interrupted one began and never
promotes, rolls back or starts twice. The collaborators come in an :class:`ExperimentContext`
(unit tests pass fakes); settings are read from the environment only by the callers.
"""

from __future__ import annotations

from typing import Any

from dethrone.experiments import analysis as looks
from dethrone.experiments.modes import EXPERIMENT_MODES, serving_mode
from dethrone.experiments.rules import frozen_thresholds
from dethrone.experiments.state import (  # noqa: F401 - ExperimentContext etc. are public here
    AUTOMATIC,
    ExperimentContext,
    ExperimentError,
    _action,
    _all_to_champion,
    _require_version,
    _save,
    _servable,
    _set,
    _traffic,
    current,
    experiment_id,
    page_look,
)
from dethrone.registry.records import CHALLENGER, CHAMPION, Decision, LiveExperiment, RollbackRecord
from dethrone.store.durations import parse_duration


# --- start --------------------------------------------------------------------------
def start_experiment(
    ctx: ExperimentContext,
    *,
    challenger_version: str,
    key: str,
    mode: str = "ab",
    split: float = 0.5,
    by: str = AUTOMATIC,
    reason: str = "",
) -> dict[str, Any]:
    """Start a live experiment of ``challenger_version`` against ``@champion``.

    ``key`` (the DAG run id, or an operator request id) makes the start idempotent: a retry
    with the same key finishes or returns the experiment it started. Any other start while
    an experiment is active raises :class:`ExperimentError`.

    Returns the experiment record as a dict.
    """
    serving = serving_mode(mode)
    if not serving.experiment:
        raise ValueError(f"mode must be one of {', '.join(EXPERIMENT_MODES)}, got {mode!r}")
    if serving.splits and not 0.0 < float(split) < 1.0:
        raise ValueError(f"split must be strictly between 0 and 1, got {split!r}")
    challenger_version, new_id = (
        str(challenger_version),
        experiment_id(str(challenger_version), key),
    )
    rec = current(ctx)
    if rec is not None and rec.id == new_id and rec.state != "starting":
        return rec.to_dict()  # a retry after the start completed
    if rec is not None and rec.active and rec.id != new_id:
        raise ExperimentError(
            f"experiment {rec.id} (challenger v{rec.challenger_version}) "
            f"is {rec.state}; stop it first"
        )
    if rec is None or rec.id != new_id:
        champion = ctx.registry.alias_version(CHAMPION)
        if champion is None:
            raise ExperimentError("there is no @champion to test a challenger against")
        if str(champion.version) == challenger_version:
            raise ExperimentError(f"version {challenger_version} is already @champion")
        _require_version(ctx, challenger_version)
        rec = LiveExperiment(
            id=new_id,
            champion_version=str(champion.version),
            challenger_version=challenger_version,
            salt=new_id,
            started_at=ctx.clock(),
            mode=mode,
            split=serving.challenger_share(split),
            thresholds=frozen_thresholds(ctx.settings),
            dag_run_id=key,
            state="starting",
            action=_action(ctx, "start", by, reason),
        )
        rec = _save(ctx, rec)
    try:
        if not rec.run_id:
            rec = _set(ctx, rec, run_id=ctx.tracker.start_run(rec))
        _servable(ctx, challenger_version, collecting=True)
        ctx.registry.set_alias(CHALLENGER, challenger_version)
        fields: dict[str, Any] = {"mode": rec.mode, "experiment": rec.id}
        if serving_mode(rec.mode).splits:
            share = rec.split
            assert share is not None  # a splitting mode's record has its split
            fields.update(a=1.0 - float(share), b=float(share))
        rec = _traffic(ctx, rec, why="start", salt=rec.salt, **fields)
        return _set(ctx, rec, state="running").to_dict()
    except Exception:
        _unserve_challenger(ctx, challenger_version)
        raise


def _unserve_challenger(ctx: ExperimentContext, version: str) -> None:
    """After a failed start: no router may serve the half-started challenger (issue 18.6).

    The record stays ``starting``: a retry with the same key finishes the start (it sets
    the alias again), ``stop`` ends it. Best effort: the registry may be the part that failed.
    """
    try:
        found = ctx.registry.alias_version(CHALLENGER)
        if found is not None and str(found.version) == str(version):
            ctx.registry.client.delete_registered_model_alias(ctx.registry.name, CHALLENGER)
    except Exception:  # noqa: BLE001, S110 - the start's own error is the one to report
        pass


# --- looks and automatic actions --------------------------------------------------------
def evaluate_experiment(ctx: ExperimentContext) -> dict[str, Any]:
    """One scheduled look: decide, log the look, and act on the outcome.

    ``promote`` promotes and opens the guardrail window, ``keep`` returns all traffic to
    the champion, ``inconclusive`` (a broken sample ratio, label coverage that differs
    between the arms, units in both arms) stops the experiment, ``continue`` does nothing.
    An interrupted promotion is finished; the guardrail window after a promotion is
    :func:`check_rollback`'s.
    """
    rec = current(ctx)
    if rec is None or not rec.active:
        return {
            "experiment": None if rec is None else rec.id,
            "state": _state(rec),
            "action": "none",
        }
    if rec.state in ("guardrail", "rolling-back"):
        return _out(rec, "none")  # the window is check_rollback's
    if rec.state == "promoting":
        return _out(_finish_promotion(ctx, rec), "promoted")
    if rec.state == "starting":
        return _out(rec, "none")  # the start task (or its retry) finishes it
    decision, rec, look = _look(ctx, rec)
    outcome = decision.outcome
    if outcome == "promote":
        return _out(_promote(ctx, rec, decision, by=AUTOMATIC, reason=""), "promoted", look)
    if outcome in ("keep", "inconclusive"):  # inconclusive: the look found it invalid
        state = "kept" if outcome == "keep" else "inconclusive"
        _record_decision(ctx, rec, decision, outcome)
        why = "keep" if outcome == "keep" else f"inconclusive ({decision.reasons[0]})"[:200]
        rec = _all_to_champion(ctx, rec, why)
        rec = _set(
            ctx,
            rec,
            state=state,
            outcome=outcome,
            ended_at=ctx.clock(),
            reasons=list(decision.reasons),
        )
        return _out(rec, state, look)
    return _out(rec, "continue", look)


def _look(ctx: ExperimentContext, rec: LiveExperiment) -> tuple[Any, LiveExperiment, Any]:
    """Take one look now through :func:`dethrone.experiments.rules.look`, log it (MLflow and
    the page), freeze the loss it resolved, and count it. Returns the look's result, the
    updated record and its :class:`Look` record."""
    result, frozen = looks.take_look(ctx.engine, rec, ctx.settings, now=ctx.clock())
    look = looks.look_record(result)
    ctx.tracker.log_look(rec, look)
    page_look(ctx, rec, looks.PageLook(look, result))  # the experiment page's copy
    rec = _set(ctx, rec, looks=rec.looks + 1, thresholds=frozen, reasons=list(result.reasons))
    return result, rec, look


def _state(rec: LiveExperiment | None) -> str | None:
    return None if rec is None else rec.state


def _out(rec: LiveExperiment, action: str, look: Any = None) -> dict[str, Any]:
    return {
        "experiment": rec.id,
        "state": rec.state,
        "action": action,
        "look": None if look is None else look.to_dict(),
    }


def _record_decision(
    ctx: ExperimentContext, rec: LiveExperiment, decision: Any, outcome: str
) -> Decision:
    record = Decision(
        outcome=outcome,
        dag_run_id=rec.dag_run_id,
        champion_version=rec.champion_version,
        challenger_version=rec.challenger_version,
        reasons=[] if decision is None else list(decision.reasons),
        pvalue=None if decision is None else looks._num(decision.pvalue),
        ci=None
        if decision is None
        else [looks._num(decision.ci_low), looks._num(decision.ci_high)],
        loss="live",
        comparison_run_id=rec.run_id,
        final=True,
        expected_share_a=None if rec.split is None else 1.0 - rec.split,
    )
    ctx.registry.record_decision(rec.challenger_version, record)
    return record


def _promote(
    ctx: ExperimentContext, rec: LiveExperiment, decision: Any, *, by: str, reason: str
) -> LiveExperiment:
    reasons = list(decision.reasons) if decision is not None else [f"promoted by {by}: {reason}"]
    rec = _set(
        ctx,
        rec,
        state="promoting",
        outcome="promote",
        reasons=reasons,
        action=_action(ctx, "promote", by, reason),
    )
    _record_decision(ctx, rec, decision, "promote")
    return _finish_promotion(ctx, rec)


def _finish_promotion(ctx: ExperimentContext, rec: LiveExperiment) -> LiveExperiment:
    # registry.promote is crash-safe and a no-op once done; the holdback (the previous
    # champion) becomes the gateway's challenger arm for the guardrail window.
    ctx.registry.promote(rec.challenger_version)
    _servable(ctx, rec.champion_version, collecting=True)
    ctx.registry.set_alias(CHALLENGER, rec.champion_version)
    share = float(ctx.settings.holdback_share)
    why = f"promote by {(rec.action or {}).get('by', AUTOMATIC)}, guardrail holdback {share:g}"
    rec = _traffic(
        ctx,
        rec,
        why=why,
        mode="ab",
        a=1.0 - share,
        b=share,
        salt=f"{rec.salt}-guard",
        experiment=rec.id,
    )
    until = rec.window_until or ctx.clock() + parse_duration(ctx.settings.rollback_window)
    return _set(ctx, rec, state="guardrail", holdback=share, window_until=until)


def check_rollback(ctx: ExperimentContext) -> dict[str, Any]:
    """In the guardrail window: roll back when the new champion is significantly worse.

    The look compares the new champion's live loss with the holdback's (the previous
    champion, ``holdback_share`` of the traffic), and its error rate and latency. It rolls
    back on harm, or (fail safe) when the window's sample ratio or label coverage is
    broken; it ends the window (the promotion is final) once the holdback has the labelled
    units its test needs, or after ``ROLLBACK_MAX_DURATION``.
    """
    rec = current(ctx)
    if rec is None or rec.state not in ("guardrail", "rolling-back"):
        return {
            "experiment": None if rec is None else rec.id,
            "state": _state(rec),
            "action": "none",
        }
    if rec.state == "rolling-back":
        return _out(_finish_rollback(ctx, rec), "rolled-back")
    result, rec, look = _look(ctx, rec)
    if result.outcome == "rollback":  # harm shown, or the window's evidence is invalid
        why = "automatic rollback: " + "; ".join(result.reasons)
        return _out(_rollback(ctx, rec, by=AUTOMATIC, reason=why[:1000]), "rolled-back", look)
    if result.outcome == "final":  # the holdback's test had what it needs: no harm shown
        rec = _all_to_champion(ctx, rec, "guardrail window closed, promotion final")
        _servable(ctx, rec.champion_version, collecting=False)
        rec = _set(ctx, rec, state="promoted", ended_at=ctx.clock())
        return _out(rec, "window-closed", look)
    return _out(rec, "continue", look)


def _rollback(
    ctx: ExperimentContext, rec: LiveExperiment, *, by: str, reason: str
) -> LiveExperiment:
    rec = _set(
        ctx,
        rec,
        state="rolling-back",
        outcome="rolled-back",
        reasons=[*rec.reasons, reason],
        action=_action(ctx, "rollback", by, reason),
    )
    return _finish_rollback(ctx, rec)


def _finish_rollback(ctx: ExperimentContext, rec: LiveExperiment) -> LiveExperiment:
    reg = ctx.registry
    reason = (rec.action or {}).get("reason", "rollback")
    by = (rec.action or {}).get("by", AUTOMATIC)
    reg.finish_pending()  # an interrupted promotion, or this rollback cut half-way
    serving = reg.alias_version(CHAMPION)
    if serving is not None and str(serving.version) == rec.challenger_version:
        # Only while the promoted version still serves: a second rollback would undo this one.
        reg.rollback(reason)
    reg.tag_version(
        rec.challenger_version, RollbackRecord(rolled_back=True, reason=reason, by=by).to_tags()
    )
    rec = _all_to_champion(ctx, rec, f"rollback by {by}")
    _servable(ctx, rec.champion_version, collecting=False)
    return _set(ctx, rec, state="rolled-back", ended_at=ctx.clock())
