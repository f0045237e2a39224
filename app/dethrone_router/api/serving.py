"""POST /predict, /invocations and GET /health/live, /health/ready: the prediction gateway.

Each request is assigned to one arm (:mod:`dethrone_router.gateway.assignment`) by the traffic
config's ``mode`` and split, validated against that arm's model signature
(:mod:`dethrone_router.gateway.inputs`) and scored through the arm's micro-batcher
(:mod:`dethrone_router.gateway.batching`). In shadow mode the challenger scores the same rows in
a background pool after the answer is on its way.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from dethrone.settings import Settings
from dethrone_router.errors import ApiError
from dethrone_router.gateway.assignment import CHALLENGER, CHAMPION, assign, experiment_salt
from dethrone_router.gateway.batching import MicroBatcher
from dethrone_router.gateway.inputs import payload_rows, read_body, to_frame, unit_of
from dethrone_router.gateway.models import MlflowSource, ModelSource, ServedModel
from dethrone_router.gateway.predlog import served_rows
from dethrone_router.gateway.watcher import ModelWatcher
from dethrone_router.state import state

log = logging.getLogger("dethrone_router.api.serving")
bp = Blueprint("serving", __name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: shadow scorings waiting at most; more are dropped (and counted), never queued unbounded
SHADOW_QUEUE = 64


@dataclass
class ServingState:
    """The gateway's per-worker state: settings, models, metrics, shadow pool."""

    settings: Settings
    watcher: ModelWatcher
    metrics: Any
    #: the worker's prediction log (None: nothing is logged)
    writer: Any = None
    log_metrics: Any = None
    shadow_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="dethrone-shadow")
    )
    shadow_slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(SHADOW_QUEUE)
    )
    rng: random.Random = field(default_factory=random.SystemRandom)

    def start(self) -> None:
        """Start watching the registry (call once per worker process)."""
        self.watcher.start()


def build_serving(
    settings: Settings,
    metrics: Any,
    source: ModelSource | None = None,
    *,
    writer: Any = None,
    log_metrics: Any = None,
) -> ServingState:
    """The :class:`ServingState` of one app; ``source`` defaults to the MLflow registry,
    ``writer`` is the prediction log (:func:`dethrone_router.gateway.predlog.build_writer`)."""
    window = settings.serving_batch_window_ms / 1000.0
    batches = {a: metrics.batch(a) for a in (CHAMPION, CHALLENGER)}

    def make_batcher(alias: str, score, columns: bool = False) -> MicroBatcher:
        return MicroBatcher(
            score,
            max_rows=settings.serving_max_batch_rows,
            window=window,
            observe=batches[alias],
            columns=columns,
        )

    watcher = ModelWatcher(
        source or MlflowSource(settings),
        refresh_seconds=settings.serving_refresh_seconds,
        make_batcher=make_batcher,
        events=metrics,
    )
    return ServingState(
        settings=settings, watcher=watcher, metrics=metrics, writer=writer, log_metrics=log_metrics
    )


def serving() -> ServingState:
    """The gateway state of the current app (503 when serving is switched off)."""
    found = current_app.extensions.get("dethrone_serving")
    if found is None:
        raise ApiError(503, "serving_disabled", "serving is off (SERVING_ENABLED=false)")
    return found


@bp.before_request
def _limits() -> None:
    # Prediction batches are larger than configs: allow ~4 KiB per permitted row
    # (a per-request limit: Flask >= 3.1).
    settings = state().settings
    request.max_content_length = max(64 * 1024, settings.serving_max_rows * 4096)
    g.request_id = _request_id()
    g.request_id_given = g.request_id == request.headers.get("X-Request-ID")


def _request_id() -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _claim_request_id(sv: ServingState) -> bool:
    """Reserve a client's ``X-Request-ID`` for this request; 409 when it was used before.

    A request id is the log's key and the handle of the request's labels: a second request
    under the same id would be answered but not logged. Generated ids are unique already;
    a given one is checked against this worker's requests in flight and buffered rows, then
    the log. Two workers taking the same id within one flush interval cannot see each other:
    the second row is then counted at the insert (``dethrone_log_duplicate_rows_total``, and
    ``dethrone_log_dropped_total``), never lost silently.
    """
    if sv.writer is None or not g.get("request_id_given"):
        return False
    rid = g.request_id
    claimed = sv.writer.claim(rid)
    if claimed and sv.writer.logged(rid):
        sv.writer.release(rid)
        claimed = False
    if not claimed:
        raise ApiError(
            409,
            "request_id_reused",
            f"X-Request-ID {rid!r} was used by an earlier request; "
            "send a new id per request (or none: the gateway makes one)",
            "X-Request-ID",
        )
    return True


@bp.after_request
def _echo_request_id(response):
    response.headers["X-Request-ID"] = g.get("request_id") or _request_id()
    # Which worker answered: operators and tests see the per-worker model state this way.
    response.headers["X-Dethrone-Worker"] = str(os.getpid())
    return response


@bp.post("/predict")
def predict():
    """Score rows on the assigned arm; answer predictions, version, arm and request id."""
    return _score()


@bp.post("/invocations")
def invocations():
    """MLflow scoring-server compatible scoring (same formats, ``{"predictions": ...}``)."""
    return _score()


def _score():
    sv = serving()
    body = read_body()
    claimed = _claim_request_id(sv)
    try:
        return _score_body(sv, body)
    finally:
        if claimed:
            sv.writer.release(g.request_id)


def _score_body(sv: ServingState, body: dict[str, Any]):
    want_proba = body.get("probabilities", False)
    if not isinstance(want_proba, bool):
        raise ApiError(400, "type", "probabilities must be true or false", "probabilities")
    champion = sv.watcher.get(CHAMPION)
    if champion is None:
        raise ApiError(
            503,
            "no_champion",
            "no @champion model is loaded yet; register one "
            "and set the alias (see GET /health/ready)",
            None,
            {"Retry-After": str(int(sv.settings.serving_refresh_seconds))},
        )
    _, cfg = state().store.current()
    mode = cfg.get("mode", "ab")
    challenger = sv.watcher.get(CHALLENGER) if mode != "champion" else None
    order = [f.name for f in champion.model.features] if champion.model.features else None
    _, rows = payload_rows(body, max_rows=sv.settings.serving_max_rows, order=order)
    unit = unit_of(rows, cfg.get("unit_column"))
    arm, salt, served = CHAMPION, None, champion
    if challenger is not None:
        salt = experiment_salt(cfg.get("salt"), challenger.version)
        if mode == "ab":
            arm = assign(float(cfg["a"]), salt=salt, unit=unit, rng=sv.rng)
            if arm == CHALLENGER:
                served = challenger
    if want_proba and served.model.predict_proba is None:
        raise ApiError(
            400,
            "no_probabilities",
            f"the {arm} model (version {served.version}) has no predict_proba",
            "probabilities",
        )
    exp = {
        "request_id": g.request_id,
        "unit": unit,
        "champion": champion,
        "challenger": challenger,
        "salt": salt,
        "model_name": sv.settings.model_name,
    }
    started = time.perf_counter()
    frame = to_frame(rows, served.model.features, drop=cfg.get("unit_column"))
    # The log keeps a classifier's probabilities even when the client did not ask.
    log_proba = sv.writer is not None and served.model.predict_proba is not None
    try:
        labels, proba = served.batcher.submit(frame, proba=want_proba or log_proba)
    except Exception as exc:
        # Rows that fit the signature but not the model (e.g. a null where the model
        # has no imputer): the client's data, not a server fault; anything else is a 500.
        rejected = isinstance(exc, (ValueError, TypeError))
        kind = "rejected" if rejected else "error"
        _failed(sv, served, arm, True, rows, time.perf_counter() - started, exp, kind)
        if not rejected:
            raise
        raise ApiError(
            422,
            "model_rejected_input",
            f"the {arm} model (version {served.version}) rejected the rows: {str(exc)[:300]}",
        ) from None
    seconds = time.perf_counter() - started
    _scored(sv, served, arm, mode, True, rows, labels, proba, seconds, exp)
    g.rows = len(rows)
    if mode == "shadow" and challenger is not None:
        _shadow(sv, challenger, rows, cfg.get("unit_column"), exp)
    out: dict[str, Any] = {
        "predictions": labels.tolist(),
        "model_version": served.version,
        "arm": arm,
        "request_id": g.request_id,
    }
    if want_proba:
        out["classes"] = list(served.model.classes or ())
        # checked above that served.model.predict_proba exists: its scorer, asked for
        # probabilities, returns them
        assert proba is not None
        out["probabilities"] = proba.tolist()
    return jsonify(out)


def _scored(
    sv: ServingState,
    model: ServedModel,
    arm: str,
    mode: str,
    served: bool,
    rows: list,
    labels: Any,
    proba: Any,
    seconds: float,
    exp: dict[str, Any],
) -> None:
    """Count a scoring and log its rows (``served``: the answer the client got)."""
    sv.metrics.scored(arm, model.version, mode, seconds, labels, model.task)
    _log_rows(sv, model, arm, served, rows, labels, proba, seconds * 1000, exp)


def _log_rows(
    sv: ServingState,
    model: ServedModel,
    arm: str,
    served: bool,
    rows: list,
    labels: Any,
    proba: Any,
    latency_ms: float | None,
    exp: dict[str, Any],
) -> None:
    """Append a scoring's rows to the prediction log (``labels`` None: it failed)."""
    if sv.writer is not None:
        sv.writer.append(
            served_rows(
                rows=rows,
                arm=arm,
                served=served,
                model=model,
                labels=labels,
                proba=proba,
                classes=model.model.classes,
                latency_ms=latency_ms,
                **exp,
            )
        )


def _failed(
    sv: ServingState,
    model: ServedModel,
    arm: str,
    served: bool,
    rows: list,
    seconds: float | None,
    exp: dict[str, Any],
    kind: str,
) -> None:
    """Count a failed scoring on ``arm`` and log its rows with a null prediction (the
    live experiment's error-rate guardrail reads them); never raises."""
    try:
        sv.metrics.failed(arm, model.version, kind)
        latency_ms = None if seconds is None else seconds * 1000
        _log_rows(sv, model, arm, served, rows, None, None, latency_ms, exp)
    except Exception as exc:  # noqa: BLE001 - the client's answer must not change
        log.warning("failed prediction on %s not logged: %s", arm, exc)


def _shadow(
    sv: ServingState, challenger: ServedModel, rows: list, drop: str | None, exp: dict[str, Any]
) -> None:
    slots = sv.shadow_slots
    if not slots.acquire(blocking=False):
        sv.metrics.shadow_failures.labels("dropped").inc()
        _failed(sv, challenger, CHALLENGER, False, rows, None, exp, "shadow_dropped")
        return

    def run() -> None:
        started = time.perf_counter()
        try:
            frame = to_frame(rows, challenger.model.features, drop=drop)
            want = sv.writer is not None and challenger.model.predict_proba is not None
            labels, proba = challenger.batcher.submit(frame, proba=want)
            seconds = time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - the client never sees a shadow error; metrics do
            sv.metrics.shadow_failures.labels(type(exc).__name__[:40]).inc()
            log.warning("shadow scoring on version %s failed: %s", challenger.version, exc)
            seconds = time.perf_counter() - started
            _failed(sv, challenger, CHALLENGER, False, rows, seconds, exp, "shadow_error")
            slots.release()
            return
        try:
            _scored(sv, challenger, CHALLENGER, "shadow", False, rows, labels, proba, seconds, exp)
        except Exception as exc:  # noqa: BLE001 - as above
            sv.metrics.shadow_failures.labels(type(exc).__name__[:40]).inc()
            log.warning("shadow log of version %s failed: %s", challenger.version, exc)
        finally:
            slots.release()

    sv.shadow_pool.submit(run)


@bp.get("/health/live")
def live():
    """200 while the process answers."""
    return jsonify({"status": "alive"})


@bp.get("/health/ready")
def ready():
    """200 when this worker can answer predictions (a champion is loaded), else 503.

    Nothing else decides it: a full, read-only or unreachable database does not stop
    predictions (the log buffers, then drops and counts), so it is reported here (``log``,
    ``store``) and in ``/health`` and the metrics, but keeps the worker in the load balancer.
    The body is this worker's view: pid, versions served, registry state; ``reason`` says
    why a 503 (``serving_disabled``, ``no_champion_registered``: the registry answered and
    has no @champion, ``no_champion_loaded``: one exists but this worker has none yet).
    """
    found = current_app.extensions.get("dethrone_serving")
    view = found.watcher.status() if found is not None else {"models": {}}
    ok = found is not None and view["models"].get(CHAMPION) is not None
    writer = getattr(found, "writer", None)
    log_health = writer.health() if writer is not None else None
    reason = None
    if found is None:
        reason = "serving_disabled"
    elif not ok:
        registered = view.get("registered") or {}
        known = view.get("registry") == "ok" and CHAMPION in registered
        reason = (
            "no_champion_registered"
            if known and not registered[CHAMPION]
            else ("no_champion_loaded")
        )
    status = "ready" if ok else "unavailable"
    if ok and (
        view.get("registry") == "unreachable" or (log_health is not None and not log_health.ok)
    ):
        status = "degraded"
    body = {
        "status": status,
        "reason": reason,
        # seed-era key: True while the log commits (no write probe on a readiness check)
        "store": None if log_health is None else log_health.ok,
        "log": None
        if log_health is None
        else {
            k: v
            for k, v in log_health.to_dict().items()
            if k in ("ok", "buffered", "dropped_total", "last_error")
        },
        **view,
    }
    return jsonify(body), 200 if ok else 503
