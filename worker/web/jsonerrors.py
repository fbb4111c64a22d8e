"""Errors of the web service as JSON: ``{"error": {"field": ..., "message": ...}}``.

``field`` is there only when one field of the request is at fault. A view raises
:class:`ApiError`; Werkzeug's own errors (404, 405, 413, ...) and anything unexpected (500) get
the same shape. Nothing the caller sent in a header is ever echoed back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis
from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("akool_audio.web")

MESSAGES = {
    400: "bad request",
    401: "a valid API token is required: Authorization: Bearer <token>",
    404: "no such resource",
    405: "method not allowed",
    409: "conflict",
    413: "the body is larger than 64 KB",
    415: "send JSON with Content-Type: application/json",
    500: "internal error",
    503: "a service this answer needs is unavailable; try again",
}


class ApiError(Exception):
    """Raised by a view to answer with an error; ``field`` names the part of the request at
    fault (None when no single field is)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    error: dict[str, str] = {"message": message}
    if field is not None:
        error["field"] = field
    response = jsonify({"error": error})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.field, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    message = MESSAGES.get(status, exc.name.lower())
    headers: dict[str, str] = {}
    if status == 405:
        allowed = sorted(getattr(exc, "valid_methods", None) or [])
        if allowed:
            message = f"method not allowed; use {', '.join(allowed)}"
            headers["Allow"] = ", ".join(allowed)
    return error_response(status, message, headers=headers)


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, redis.RedisError):
        log.error("Redis error: %s", type(exc).__name__)
        return error_response(503, "cannot reach Redis; try again")
    log.exception("request failed")  # a traceback, never the request's body or headers
    return error_response(500, MESSAGES[500])


def install(app: Flask) -> None:
    """Answer every error of ``app`` in the JSON shape above."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
