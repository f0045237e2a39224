"""Reading a request's JSON body: one reader for every endpoint that takes one.

415 for another content type; 400 (in the one error shape) for an empty body, invalid JSON,
``NaN``/``Infinity`` (Python's json accepts them, JSON does not), nesting deeper than
:data:`~dethrone_router.validation.MAX_JSON_DEPTH` (it would only reach the parser's
recursion limit, a 500), and, where asked, a key given twice in one object.
"""

from __future__ import annotations

import json
from typing import Any

from flask import request

from dethrone_router.errors import ApiError
from dethrone_router.validation import MAX_JSON_DEPTH, ValidationError, nesting_depth


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of duplicate keys silently; a config must say one thing.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValidationError(dup, "duplicate_key", f"key {dup!r} appears twice in one object")
    return out


def read_json(*, expect: str, unique_keys: bool = False) -> Any:
    """The request's JSON value; ``expect`` ("a JSON object", ...) goes in the empty-body
    message, ``unique_keys`` refuses an object with a key given twice."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {request.mimetype or 'none'!r}",
            "Content-Type",
        )
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise ValidationError(None, "empty", f"body is empty; send {expect}")
    depth = nesting_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(
            None,
            "too_deep",
            f"body nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted",
        )
    try:
        return json.loads(
            raw,
            parse_constant=_reject_constant,
            object_pairs_hook=_unique_keys if unique_keys else None,
        )
    except ValidationError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationError(None, "invalid_json", f"body is not valid JSON: {exc}") from None
