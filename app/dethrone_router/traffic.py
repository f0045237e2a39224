"""GET/POST /traffic and GET /traffic/history."""

from __future__ import annotations

import json
import re

from flask import Blueprint, jsonify, request

from dethrone.store.errors import VersionConflict
from dethrone_router import state
from dethrone_router.auth import require_read, require_write
from dethrone_router.errors import ApiError
from dethrone_router.validation import (
    MAX_JSON_DEPTH,
    ValidationError,
    merge_update,
    nesting_depth,
    validate_config,
)

bp = Blueprint("traffic", __name__)
_LIMIT_RE = re.compile(r"[0-9]{1,6}")
#: who or what makes a change (a person, a DAG run); kept in the change's history entry
SOURCE_HEADER = "X-Dethrone-Source"
# Printable ASCII only: a header arrives as latin-1, so other text would be stored garbled.
_SOURCE_RE = re.compile(r"[\x20-\x7e]{1,256}")


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN and Infinity; JSON does not, and a/b must be finite.
    raise ValueError(f"{name} is not valid JSON")


def _json_body():
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {request.mimetype or 'none'!r}",
            "Content-Type",
        )
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ValidationError(None, "empty", "body is empty; send a JSON object")
    depth = nesting_depth(raw)
    if depth > MAX_JSON_DEPTH:
        # Deep nesting would only reach recursion limits (a 500) further on.
        raise ValidationError(
            None,
            "too_deep",
            f"body nests {depth} levels deep; a config needs at most {MAX_JSON_DEPTH}",
        )
    try:
        return json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValidationError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(None, "invalid_json", f"body is not valid JSON: {exc}") from None


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of duplicate keys silently; a config must say one thing.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValidationError(dup, "duplicate_key", f"key {dup!r} appears twice in one object")
    return out


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
    body = _json_body()
    expected = None
    if isinstance(body, dict) and "version" in body:
        expected = body.pop("version")
        if not isinstance(expected, int) or isinstance(expected, bool) or expected < 0:
            raise ValidationError(
                "version", "type", "version must be a non-negative integer (the one to replace)"
            )
    st = state()

    def change(current: dict) -> dict:
        merged = merge_update(current, body)
        return validate_config(merged, st.columns, st.settings.router_max_data_size)

    try:
        version, _, after = st.store.update(change, expected, source=source)
    except VersionConflict as exc:
        raise ApiError(
            409, "version_conflict", f"{exc}; GET /traffic and retry", "version"
        ) from None
    return jsonify({"status": "updated", "traffic": {**after, "version": version}})


@bp.get("/traffic/history")
def history():
    """Every accepted change, oldest first; ``?limit=N`` keeps the newest N."""
    require_read()
    limit = request.args.get("limit")
    if limit is not None:
        # ASCII digits only: str.isdigit() accepts '²' (int() then fails) and '٣'.
        if not _LIMIT_RE.fullmatch(limit) or not 1 <= int(limit) <= 100_000:
            raise ValidationError("limit", "range", "limit must be an integer in [1, 100000]")
        limit = int(limit)
    st = state()
    version, _ = st.store.current()
    return jsonify({"version": version, "history": st.store.history(limit)})
