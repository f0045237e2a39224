"""POST /feedback: the true label of served rows, joined to the log by (request_id, row).

Thin on purpose: :func:`dethrone.store.feedback.parse_feedback` validates (a malformed body
is a 400 naming the field, nothing stored), :func:`~dethrone.store.feedback.record_feedback`
stores the batch in one transaction and says what happened to each item; its
``http_status`` (200, 207, 404, 409, 410) and ``to_dict()`` are the answer.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from dethrone.store.durations import parse_duration
from dethrone.store.feedback import MAX_BATCH, FeedbackInvalid, parse_feedback, record_feedback
from dethrone_router.body import read_json
from dethrone_router.errors import ApiError
from dethrone_router.state import state

bp = Blueprint("feedback", __name__)
#: bytes per item allowed in a body (ids and labels are capped at 128 characters each)
_ITEM_BYTES = 512


@bp.before_request
def _limit() -> None:
    request.max_content_length = max(64 * 1024, MAX_BATCH * _ITEM_BYTES)


@bp.post("/feedback")
def post_feedback():
    """Store labels; 200 / 207 (a list with refused items) / 404 / 409 / 410 / 400."""
    try:
        items, overwrite, single = parse_feedback(read_json(expect="a JSON object or list"))
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
