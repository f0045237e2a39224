"""Reading a request's JSON body: one reader for every endpoint that takes one.

415 for another content type; 413 for a body over the endpoint's limit, counted on the bytes
that arrive (so a chunked body without ``Content-Length`` is refused, not cut); 400 (in the one
error shape) for an empty body, invalid JSON, ``NaN``/``Infinity`` (Python's json accepts them,
JSON does not), nesting deeper than :data:`~dethrone_router.validation.MAX_JSON_DEPTH`, a key
given twice in one object (``duplicate_key``, on every endpoint) and a string holding a lone
surrogate (``"\\ud800"``: valid JSON escapes, but not text any database or encoder takes);
413 ``string_too_long`` for a string (value or key) longer than ``ROUTER_MAX_STRING_CHARS``,
naming its place (``rows[0].cut``).

The body is parsed once and then walked once (no regex over the raw bytes, no copies of it):
a 4 MB body costs its parsed size, not a multiple of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from dethrone_router.errors import ApiError
from dethrone_router.validation import MAX_JSON_DEPTH, ValidationError

#: default of ``ROUTER_MAX_STRING_CHARS`` when the app has no settings (tests)
DEFAULT_MAX_STRING_CHARS = 4096
_READ = 64 * 1024


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    # json.loads keeps the last of duplicate keys silently; a body must say one thing.
    out = dict(pairs)
    if len(out) != len(pairs):
        dup = _first_repeated(k for k, _ in pairs)
        raise ValidationError(dup, "duplicate_key", f"key {dup!r} appears twice in one object")
    return out


def _first_repeated(keys: Iterable[str]) -> str:
    """The first key that was seen before (there is one)."""
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    raise ValueError("no key is repeated")


def read_raw() -> bytes:
    """The body's bytes, at most ``request.max_content_length`` of them, else 413.

    Werkzeug enforces the limit on ``Content-Length``; a chunked body (no length, the
    server terminates the stream) it cuts at the limit without a word. Here the bytes that
    arrive are counted and one byte past the limit is a 413.
    """
    limit = request.max_content_length
    if request.content_length is not None or limit is None:
        return request.get_data(cache=False)
    stream = request.environ.get("wsgi.input")
    if stream is None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=False)
    parts, total = [], 0
    while True:
        chunk = stream.read(min(_READ, limit + 1 - total))
        if not chunk:
            break
        total += len(chunk)
        if total > limit:
            raise RequestEntityTooLarge(
                f"the body (chunked) is larger than {limit} bytes, the limit of {request.path}"
            )
        parts.append(chunk)
    return b"".join(parts)


def _max_string_chars() -> int:
    try:
        settings = current_app.extensions["dethrone_router"].settings
    except (KeyError, RuntimeError):
        return DEFAULT_MAX_STRING_CHARS
    return int(getattr(settings, "router_max_string_chars", DEFAULT_MAX_STRING_CHARS))


def _where(path: tuple) -> str | None:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def _check_text(text: str, path: tuple, cap: int, what: str) -> None:
    if len(text) > cap:
        raise ApiError(
            413,
            "string_too_long",
            f"{what} at {_where(path) or 'the top level'} has {len(text)} characters; "
            f"at most {cap} are accepted (ROUTER_MAX_STRING_CHARS)",
            _where(path),
        )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError(
                _where(path),
                "invalid_string",
                f"{what} at {_where(path) or 'the top level'} holds a lone surrogate "
                "(an unpaired \\ud800-\\udfff escape), which is not text",
            ) from None


def check_value(value: Any, *, max_string_chars: int) -> None:
    """Walk a parsed body once: depth, string lengths and lone surrogates (keys too)."""
    stack: list[tuple[Any, tuple, int]] = [(value, (), 0)]
    while stack:
        item, path, depth = stack.pop()
        kind = item.__class__
        if kind is str:
            _check_text(item, path, max_string_chars, "a string")
        elif kind is dict or kind is list:
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValidationError(
                    None,
                    "too_deep",
                    f"body nests deeper than {MAX_JSON_DEPTH} levels at "
                    f"{_where(path) or 'the top level'}; at most {MAX_JSON_DEPTH} are accepted",
                )
            if kind is dict:
                for key, sub in item.items():
                    _check_text(key, (*path, key), max_string_chars, "a key")
                    if sub.__class__ in (str, dict, list):
                        stack.append((sub, (*path, key), depth))
            else:
                for i, sub in enumerate(item):
                    if sub.__class__ in (str, dict, list):
                        stack.append((sub, (*path, i), depth))


def read_json(*, expect: str, unique_keys: bool = True) -> Any:
    """The request's JSON value; ``expect`` ("a JSON object", ...) goes in the empty-body
    message. A key given twice in one object is refused on every endpoint (``unique_keys``
    stays as a parameter for callers of the seed era; it is always on)."""
    del unique_keys  # one rule for every endpoint
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {request.mimetype or 'none'!r}",
            "Content-Type",
        )
    raw = read_raw()
    if not raw.strip():
        raise ValidationError(None, "empty", f"body is empty; send {expect}")
    try:
        value = json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except ValidationError:
        raise
    except RecursionError:
        raise ValidationError(
            None, "too_deep", f"body nests too deep; at most {MAX_JSON_DEPTH} levels are accepted"
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(None, "invalid_json", f"body is not valid JSON: {exc}") from None
    del raw
    check_value(value, max_string_chars=_max_string_chars())
    return value
