"""Bearer tokens: ``ROUTER_TOKEN`` for changes, optional ``ROUTER_READ_TOKEN`` for reads."""

from __future__ import annotations

import hmac

from flask import request

from dethrone_router.errors import ApiError
from dethrone_router.state import state

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="dethrone-router"'}


def _matches(token: str) -> bool:
    given = request.headers.get("Authorization", "")
    # compare_digest takes constant time, so the answer time leaks nothing of the token.
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def require_write() -> None:
    """401 unless ``ROUTER_TOKEN`` is unset or sent."""
    token = state().settings.router_token
    if token and not _matches(token):
        raise ApiError(
            401,
            "unauthorized",
            "POST /traffic needs 'Authorization: Bearer <token>'",
            "Authorization",
            _CHALLENGE,
        )


def require_read() -> None:
    """401 unless ``ROUTER_READ_TOKEN`` is unset or it (or the write token) is sent.

    /health, /metrics and /openapi.json never call this: probes and scrapers stay open.
    """
    settings = state().settings
    if settings.router_read_token and not (
        _matches(settings.router_read_token) or _matches(settings.router_token)
    ):
        raise ApiError(
            401,
            "unauthorized",
            f"{request.method} {request.path} needs 'Authorization: Bearer <read token>'",
            "Authorization",
            _CHALLENGE,
        )


def require_feedback() -> None:
    """401 unless the feedback token is sent: ``FEEDBACK_TOKEN``, else ``ROUTER_TOKEN``
    (the write token also passes when both are set); open only when both are unset."""
    settings = state().settings
    tokens = [t for t in (settings.feedback_token, settings.router_token) if t]
    if tokens and not any(_matches(t) for t in tokens):
        raise ApiError(
            401,
            "unauthorized",
            "POST /feedback needs 'Authorization: Bearer <feedback token>' "
            "(FEEDBACK_TOKEN, or ROUTER_TOKEN when that is unset)",
            "Authorization",
            _CHALLENGE,
        )
