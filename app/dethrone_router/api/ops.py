"""GET /health, /metrics and /openapi.json."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from dethrone.store.errors import StoreUnavailable
from dethrone_router.errors import ApiError
from dethrone_router.metrics.registry import CONTENT_TYPE
from dethrone_router.openapi.spec import build_spec
from dethrone_router.state import state

bp = Blueprint("ops", __name__)


@bp.get("/health")
def health():
    """200 when ready (data set loaded, store writable, config fits), else 503.

    ``store_writable`` comes from a real write (see ``SqlConfigStore.write_problem``);
    ``store.problem`` names the cause when it fails.
    """
    st = state()
    problem = st.store.write_problem()
    checks = {"dataset": st.slicer.n_rows > 0, "store_writable": problem is None}
    try:
        version = st.config()[0]
        checks["config_valid"] = True
    except ApiError:
        version, checks["config_valid"] = st.store.current()[0], False
    except StoreUnavailable as exc:
        version, checks["config_valid"], problem = None, False, str(exc)
    ready = all(checks.values())
    serving = current_app.extensions.get("dethrone_serving")
    view = serving.watcher.status() if serving is not None else None
    writer = getattr(serving, "writer", None)
    log_health = writer.health() if writer is not None else None
    warnings = []
    if view is not None and view["registry"] == "unreachable":
        warnings.append("model registry unreachable; the loaded models keep serving")
    if log_health is not None and not log_health.ok:
        # Predictions go on; their log does not (rows wait in the buffer, then are dropped).
        warnings.append(
            f"prediction log not writing ({log_health.buffered} rows buffered, "
            f"{log_health.dropped_total} dropped): {log_health.last_error}"
        )
    # Still 200 when degraded: the worker serves, but says what is wrong.
    degraded = ready and bool(warnings)
    body = {
        "status": "degraded" if degraded else "ok" if ready else "unavailable",
        "warnings": warnings,
        "log": None
        if log_health is None
        else {
            k: v
            for k, v in log_health.to_dict().items()
            if k
            in (
                "ok",
                "buffered",
                "capacity",
                "dropped_total",
                "written_total",
                "last_error",
                "last_flush",
            )
        },
        "checks": checks,
        "serving": view,
        "config_version": version,
        "store": {"path": str(st.store.path), "problem": problem},
        "metrics": st.metrics.problem,
        "dataset": {
            "rows": st.slicer.n_rows,
            "columns": st.slicer.columns,
            "target": st.settings.target,
        },
    }
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format, summed over all workers."""
    return Response(state().metrics.render(), content_type=CONTENT_TYPE)


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.0 description of this router (columns and limits filled in)."""
    st = state()
    return jsonify(
        build_spec(
            st.slicer.columns,
            st.settings.router_max_data_size,
            bool(st.settings.router_token),
            bool(st.settings.router_read_token),
        )
    )
