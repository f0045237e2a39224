"""POST /feedback: the true label of served rows, joined to the log by (request_id, row).

Thin on purpose: :func:`dethrone.store.feedback.parse_feedback` validates (a malformed body
is a 400 naming the field, nothing stored), :func:`~dethrone.store.feedback.record_feedback`
stores the batch in one transaction and says what happened to each item; its
``http_status`` (200, 207, 404, 409, 410) and ``to_dict()`` are the answer.
"""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from dethrone.store.durations import parse_duration
from dethrone.store.feedback import MAX_BATCH, FeedbackInvalid, parse_feedback, record_feedback
from dethrone_router import state
from dethrone_router.errors import ApiError
from dethrone_router.validation import ValidationError

bp = Blueprint("feedback", __name__)
#: bytes per item allowed in a body (ids and labels are capped at 128 characters each)
_ITEM_BYTES = 512


@bp.before_request
def _limit() -> None:
    request.max_content_length = max(64 * 1024, MAX_BATCH * _ITEM_BYTES)


def _body() -> object:
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {request.mimetype or 'none'!r}",
            "Content-Type",
        )
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ValidationError(None, "empty", "body is empty; send a JSON object or list")
    try:
        return json.loads(raw, parse_constant=_reject)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(None, "invalid_json", f"body is not valid JSON: {exc}") from None


def _reject(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


@bp.post("/feedback")
def post_feedback():
    """Store labels; 200 / 207 (a list with refused items) / 404 / 409 / 410 / 400."""
    try:
        items, overwrite, single = parse_feedback(_body())
    except FeedbackInvalid as exc:
        raise ApiError(400, "invalid_feedback", str(exc), exc.field) from None
    st = state()
    result = record_feedback(
        st.engine,
        items,
        overwrite=overwrite,
        single=single,
        max_age=parse_duration(st.settings.feedback_max_age, name="FEEDBACK_MAX_AGE"),
    )
    serving = current_app.extensions.get("dethrone_serving")
    counter = getattr(serving, "log_metrics", None)
    if counter is not None:
        for item in result.items:
            if item.status in ("stored", "overwritten"):
                counter.feedback.labels(item.arm or "unknown").inc()
    return jsonify(result.to_dict()), result.http_status
