"""The stored record of the live experiment and the small steps every transition uses.

The record is one JSON tag on the registered model
(:class:`~dethrone.registry.records.LiveExperiment`) mirrored on its MLflow run;
the helpers here read and write it, set the router's serving
fields and mark versions servable. The lifecycle is :mod:`dethrone.experiments.lifecycle`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from dethrone.experiments import tracking as experiment_tracking
from dethrone.experiments.protocols import ExperimentRegistry, ExperimentRouter, ExperimentTracker
from dethrone.pipeline.context import configure_mlflow
from dethrone.registry.client import Registry
from dethrone.registry.records import CHALLENGER, Decision, LiveExperiment, OperatorAction
from dethrone.settings import Settings
from dethrone.slices.router_client import RouterClient, source_text
from dethrone.store.engine import database_url, make_engine
from dethrone.store.experiments import refresh_counts, save_experiment, save_look

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

#: who the automatic actions are recorded as
AUTOMATIC = "dethrone"


class ExperimentError(RuntimeError):
    """A live experiment cannot be started or changed in its current state (permanent)."""

    permanent = True


@dataclass(frozen=True)
class ExperimentContext:
    """What the lifecycle talks to: registry, router client, log database, tracker, clock.

    ``tracker`` has ``start_run(rec) -> run_id``, ``update(rec)`` and
    ``log_look(rec, look) -> list of looks`` (:mod:`dethrone.experiments.tracking`). The
    collaborators' Protocols are in :mod:`dethrone.experiments.protocols`; ``engine`` is the
    log database's SQLAlchemy engine, or None where there is none (no counts, no pages).
    """

    settings: Settings
    registry: ExperimentRegistry
    router: ExperimentRouter
    engine: Engine | None
    tracker: ExperimentTracker
    clock: Callable[[], float] = field(default=time.time)

    @classmethod
    def from_settings(cls, settings: Settings, *, check: bool = True) -> ExperimentContext:
        """Configure MLflow once and build the real collaborators for ``settings``."""
        configure_mlflow(settings, check=check)
        return cls(
            settings=settings,
            registry=Registry(settings),
            router=RouterClient.from_settings(settings),
            engine=make_engine(database_url(settings)),
            tracker=experiment_tracking.Tracker(settings),
        )


def log_engine(ctx: ExperimentContext) -> Engine:
    """The log database's engine; :class:`ExperimentError` when the context has none."""
    if ctx.engine is None:
        raise ExperimentError("this experiment context has no log database (engine is None)")
    return ctx.engine


# --- the stored record --------------------------------------------------------------
def current(ctx: ExperimentContext) -> LiveExperiment | None:
    """The latest experiment of the model (running or ended), or ``None``."""
    return stored_record(ctx.registry)


def stored_record(registry: ExperimentRegistry) -> LiveExperiment | None:
    """The latest experiment recorded on ``registry``'s model, or ``None`` (what
    :func:`current` reads, for callers that have only a registry)."""
    try:
        tags = registry.client.get_registered_model(registry.name).tags or {}
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None  # no registered model yet
        raise
    return LiveExperiment.from_json(tags.get(LiveExperiment.RECORD_TAG))


def _save(ctx: ExperimentContext, rec: LiveExperiment) -> LiveExperiment:
    ctx.registry.client.set_registered_model_tag(
        ctx.registry.name, LiveExperiment.RECORD_TAG, rec.to_json()
    )
    if rec.run_id:
        ctx.tracker.update(rec)
    page_record(ctx, rec)
    return rec


def _set(ctx: ExperimentContext, rec: LiveExperiment, **changes: Any) -> LiveExperiment:
    return _save(ctx, dataclasses.replace(rec, **changes))


def experiment_id(challenger_version: str, key: str) -> str:
    """Deterministic id of the experiment a (challenger, DAG run or request) starts.

    >>> experiment_id("7", "manual__1") == experiment_id("7", "manual__1")
    True
    """
    return f"live-v{challenger_version}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def change_source(rec: LiveExperiment, why: str = "") -> str:
    """What the router's history records as the source of a serving change of ``rec``.

    >>> rec = LiveExperiment(id="live-v2-ab", dag_run_id="manual__1")
    >>> change_source(rec, "start")
    'live experiment live-v2-ab (run manual__1): start'
    """
    text = f"live experiment {rec.id} (run {rec.dag_run_id})"
    return source_text(f"{text}: {why}" if why else text)


def _traffic(
    ctx: ExperimentContext, rec: LiveExperiment, *, why: str = "", **config: Any
) -> LiveExperiment:
    """Set the router's serving fields only (never the drift settings) and note the version.

    The router's history records the change as made by this experiment and its DAG run,
    for ``why`` (the action: start, promote, keep, rollback, ...).
    """
    stored = ctx.router.set_traffic(source=change_source(rec, why), as_experiment=rec.id, **config)
    version = stored.get("version") if isinstance(stored, dict) else None
    return dataclasses.replace(rec, config_versions=[*rec.config_versions, version])


def _all_to_champion(ctx: ExperimentContext, rec: LiveExperiment, why: str) -> LiveExperiment:
    ctx.registry.client.delete_registered_model_alias(ctx.registry.name, CHALLENGER)
    # The mode alone: a and b also cut the offline /ab_data slices, and a = 1, b = 0 would
    # leave the next pipeline run's A/B pre-screen an empty arm B.
    return _traffic(ctx, rec, why=why, mode="champion", experiment=None)


def _servable(ctx: ExperimentContext, version: str, *, collecting: bool) -> None:
    """Mark ``version``'s recorded decision as not final while live traffic judges it.

    The gateway refuses a ``@challenger`` whose recorded decision is final and not
    ``promote`` (a first-champion record, an earlier ``keep``); the challenger of an
    experiment and the holdback of a guardrail window must be served all the same.
    """
    ctx.registry.tag_version(version, Decision.field_tags(final=not collecting))


def _action(ctx: ExperimentContext, name: str, by: str, reason: str) -> dict[str, Any]:
    """The :class:`OperatorAction` stored on the experiment: who did what, why, when."""
    return OperatorAction(action=name, by=by, reason=reason, at=ctx.clock()).to_dict()


def _require_version(ctx: ExperimentContext, version: str) -> None:
    try:
        ctx.registry.model_version(version)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ExperimentError(f"version {version} of {ctx.registry.name} does not exist") from None


# --- the experiment page's copy in the router's database ------------------------------
log = logging.getLogger("dethrone.experiments")
#: writes of the page's copy that failed since the process started (each one is logged;
#: the lifecycle goes on: the registry tag and the MLflow run hold the record)
PAGE_WRITE_FAILURES = {"record": 0, "look": 0}


def page_record(ctx: ExperimentContext, rec: LiveExperiment) -> None:
    """Upsert ``rec`` into the ``experiments`` table the page reads; never raises."""
    if ctx.engine is None:
        return
    try:
        save_experiment(ctx.engine, rec.to_dict())
    except Exception as exc:  # noqa: BLE001 - the page's copy must not fail a transition
        PAGE_WRITE_FAILURES["record"] += 1
        log.warning("experiment page: cannot store experiment %s: %s", rec.id, exc)


def page_look(ctx: ExperimentContext, rec: LiveExperiment, look: Any, decision: Any = None):
    """Store ``look`` (a ``Look`` or a look result with ``to_dict()``) as look
    ``rec.looks + 1`` and refresh the settled per-arm counts; never raises.

    A ``Look`` has no reasons nor sample-ratio test: they are taken from ``decision``.
    """
    if ctx.engine is None:
        return
    try:
        body = dict(look.to_dict())
        if decision is not None and "reasons" not in body:
            body["reasons"] = [str(r) for r in getattr(decision, "reasons", ()) or ()]
        srm = getattr(decision, "srm", None)
        if srm is not None and "srm_pvalue" not in body:
            body["srm_pvalue"] = float(srm.pvalue)
        save_look(ctx.engine, rec.id, body, rec.looks + 1)
        refresh_counts(ctx.engine, rec.id, now=ctx.clock())
    except Exception as exc:  # noqa: BLE001 - the page's copy must not fail a look
        PAGE_WRITE_FAILURES["look"] += 1
        log.warning("experiment page: cannot store look of %s: %s", rec.id, exc)
