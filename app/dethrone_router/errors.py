"""One JSON error shape for every failure: ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from dethrone.store.errors import StoreUnavailable
from dethrone_router.validation import ValidationError

log = logging.getLogger("dethrone_router")


class ApiError(Exception):
    """An error answer with an explicit status, machine code and offending field."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
):
    """A Flask response in the shared error shape."""
    resp = jsonify({"error": {"code": code, "message": message, "field": field, "status": status}})
    resp.status_code = status
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def _handle(exc: Exception):
    if isinstance(exc, ValidationError):
        return error_response(400, exc.code, exc.message, exc.field)
    if isinstance(exc, StoreUnavailable):
        log.warning("%s", exc)
        return error_response(503, "store_unavailable", str(exc), None, {"Retry-After": "5"})
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    if isinstance(exc, HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, code, exc.description or exc.name, None, headers)
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal server error; see the router log")


def register_error_handler(app: Flask) -> None:
    """Route every exception of ``app`` through the one JSON handler."""
    app.register_error_handler(Exception, _handle)
