"""POST /feedback: the true label of served rows, joined to the log by (request_id, row).

Thin on purpose: :func:`dethrone.store.feedback.parse_feedback` validates (a malformed body
is a 400 naming the field, nothing stored), :func:`~dethrone.store.feedback.record_feedback`
checks each label against its row's task (400 naming it), stores the batch in one
transaction and says what happened to each item; its ``http_status`` (200, 207, 404, 409,
410) and ``to_dict()`` are the answer.

Needs ``FEEDBACK_TOKEN`` (falling back to ``ROUTER_TOKEN``) when one is set.

A label may arrive before its row is in the database: rows wait up to
``LOG_FLUSH_SECONDS`` in the buffer of the worker that served them. Rows in this worker's
buffer are flushed first; labels for rows still missing are held, re-checked every 50 ms,
up to ``FEEDBACK_HOLD_SECONDS`` (another worker's buffer), then stored in one transaction.
Ids that were never served still get 404, after the hold.
"""

from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from dethrone.store.durations import parse_duration
from dethrone.store.feedback import (
    MAX_BATCH,
    FeedbackInvalid,
    missing_rows,
    parse_feedback,
    record_feedback,
)
from dethrone_router.auth import require_feedback
from dethrone_router.body import read_json
from dethrone_router.errors import ApiError
from dethrone_router.state import state

bp = Blueprint("feedback", __name__)
#: bytes per item allowed in a body (ids and labels are capped at 128 characters each)
_ITEM_BYTES = 512
_POLL = 0.05


@bp.before_request
def _limit() -> None:
    request.max_content_length = max(64 * 1024, MAX_BATCH * _ITEM_BYTES)
    require_feedback()


def _wait_for_rows(st, serving, items) -> None:
    """Hold until every item's row is logged, or ``FEEDBACK_HOLD_SECONDS`` passed."""
    hold = st.settings.feedback_hold_seconds
    writer = getattr(serving, "writer", None)
    keys = {(i.request_id, i.row) for i in items}
    deadline = time.monotonic() + hold
    if writer is not None and writer.pending({k[0] for k in keys}):
        writer.flush(timeout=max(hold, 0.1))
    if hold <= 0:
        return
    missing = missing_rows(st.engine, keys)
    while missing and time.monotonic() < deadline:
        if writer is not None and writer.pending({k[0] for k in missing}):
            writer.flush(timeout=max(0.1, deadline - time.monotonic()))
        else:
            time.sleep(_POLL)
        missing = missing_rows(st.engine, missing)


@bp.post("/feedback")
def post_feedback():
    """Store labels; 200 / 207 (a list with refused items) / 404 / 409 / 410 / 400."""
    st = state()
    serving = current_app.extensions.get("dethrone_serving")
    try:
        items, overwrite, single = parse_feedback(read_json(expect="a JSON object or list"))
        _wait_for_rows(st, serving, items)
        result = record_feedback(
            st.engine,
            items,
            overwrite=overwrite,
            single=single,
            max_age=parse_duration(st.settings.feedback_max_age, name="FEEDBACK_MAX_AGE"),
        )
    except FeedbackInvalid as exc:
        raise ApiError(400, "invalid_feedback", str(exc), exc.field) from None
    counter = getattr(serving, "log_metrics", None)
    if counter is not None:
        for item in result.items:
            if item.status in ("stored", "overwritten"):
                counter.feedback.labels(item.arm or "unknown").inc()
    return jsonify(result.to_dict()), result.http_status
