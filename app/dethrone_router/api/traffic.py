"""GET/POST /traffic and GET /traffic/history."""

from __future__ import annotations

import re

from flask import Blueprint, jsonify, request

from dethrone.store.errors import VersionConflict
from dethrone_router.auth import require_read, require_write
from dethrone_router.body import read_json
from dethrone_router.errors import ApiError
from dethrone_router.state import state
from dethrone_router.validation import (
    ValidationError,
    merge_update,
    validate_config,
)

bp = Blueprint("traffic", __name__)
_LIMIT_RE = re.compile(r"[0-9]{1,6}")
#: who or what makes a change (a person, a DAG run); kept in the change's history entry
SOURCE_HEADER = "X-Dethrone-Source"
#: sent by a live experiment's own changes: only they may move a locked split
EXPERIMENT_HEADER = "X-Dethrone-Experiment"
#: the serving fields a running experiment locks (changing them mid-experiment would mix
#: phases of different splits in one analysis: Simpson's paradox)
LOCKED = ("a", "b", "mode", "salt", "experiment")
# Printable ASCII only: a header arrives as latin-1, so other text would be stored garbled.
_SOURCE_RE = re.compile(r"[\x20-\x7e]{1,256}")


def _source() -> str | None:
    value = request.headers.get(SOURCE_HEADER)
    if value is not None and not _SOURCE_RE.fullmatch(value):
        raise ValidationError(
            SOURCE_HEADER,
            "format",
            f"{SOURCE_HEADER} must have 1 to 256 printable ASCII characters",
        )
    return value


@bp.get("/traffic")
def get_traffic():
    """The current config plus its ``version``."""
    require_read()
    version, cfg, _ = state().config()
    return jsonify({**cfg, "version": version})


@bp.post("/traffic")
def post_traffic():
    """Validate a (partial) config, store it atomically and answer with the result.

    An optional ``version`` key makes the update conditional: 409 unless it is the
    current version (optimistic locking for read-modify-write clients). An optional
    ``X-Dethrone-Source`` header says who or what makes the change; the history keeps it.
    """
    require_write()
    source = _source()
    body = read_json(expect="a JSON object", unique_keys=True)
    expected = None
    if isinstance(body, dict) and "version" in body:
        expected = body.pop("version")
        if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
            raise ValidationError(
                "version", "type", "version must be a non-negative integer (the one to replace)"
            )
    st = state()

    by_experiment = request.headers.get(EXPERIMENT_HEADER)

    def change(current: dict) -> dict:
        merged = merge_update(current, body)
        checked = validate_config(merged, st.columns, st.settings.router_max_data_size)
        _check_lock(current, checked, by_experiment)
        return checked

    try:
        version, _, after = st.store.update(change, expected, source=source)
    except VersionConflict as exc:
        raise ApiError(
            409, "version_conflict", f"{exc}; GET /traffic and retry", "version"
        ) from None
    return jsonify({"status": "updated", "traffic": {**after, "version": version}})


def _check_lock(current: dict, new: dict, by_experiment: str | None) -> None:
    """409 when a change moves a field a running experiment locks, unless the experiment
    itself sends it (its ``X-Dethrone-Experiment`` header names it)."""
    running = current.get("experiment")
    if not running or by_experiment == running:
        return
    for key in LOCKED:
        if new.get(key) != current.get(key):
            raise ApiError(
                409,
                "experiment_running",
                f"experiment {running} is running: {key} is locked until it ends "
                f"(dethrone experiment stop, or wait for its decision)",
                key,
            )


@bp.get("/traffic/history")
def history():
    """Every accepted change, oldest first; ``?limit=N`` keeps the newest N."""
    require_read()
    raw = request.args.get("limit")
    limit: int | None = None
    if raw is not None:
        # ASCII digits only: str.isdigit() accepts '²' (int() then fails) and '٣'.
        if not _LIMIT_RE.fullmatch(raw) or not 1 <= int(raw) <= 100_000:
            raise ValidationError("limit", "range", "limit must be an integer in [1, 100000]")
        limit = int(raw)
    st = state()
    version, _ = st.store.current()
    return jsonify({"version": version, "history": st.store.history(limit)})
