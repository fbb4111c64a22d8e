"""Errors of the web service as JSON: ``{"error": {"code": ..., "message": ..., "field": ...}}``.

``code`` is one of :class:`ErrorCode` (README, "Error codes", and the OpenAPI document list them
from it): a client branches on it, never on the English ``message``. ``field`` is there only
when one field of the request is at fault. A view raises :class:`ApiError`; Werkzeug's own
errors (404, 405, 413, ...) and anything unexpected (500) get the same shape, and so do the
server's own refusals (worker/web/serving.py). Nothing the caller sent in a header is ever
echoed back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

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


class ErrorCode(StrEnum):
    """The ``code`` of an error answer; ``status`` is the HTTP status it comes with and
    ``description`` its line in README and the OpenAPI document. A member is declared as
    ``NAME = "value", status, "description"``."""

    _value_: str
    status: int
    description: str

    def __new__(cls, value: str, status: int, description: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.description = description
        return member

    INVALID_FIELD = "invalid_field", 400, "a field or parameter is wrong; `field` names it"
    INVALID_BODY = "invalid_body", 400, "the body is not JSON, or not a JSON object"
    MALFORMED_REQUEST = "malformed_request", 400, "the server could not parse the HTTP request"
    UNAUTHORIZED = "unauthorized", 401, "no valid Bearer token (or dashboard session)"
    FORBIDDEN = "forbidden", 403, "refused whatever the token: a cross-site write, no CSRF header"
    NOT_FOUND = "not_found", 404, "no such job, schedule, result or route"
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the path exists; `Allow` lists its methods"
    REQUEST_TIMEOUT = "request_timeout", 408, "the body did not arrive within 30 s"
    CONFLICT = "conflict", 409, "refused in the current state of the resource"
    JOB_ID_CONFLICT = "job_id_conflict", 409, "this job_id exists with another request"
    NOT_CANCELLABLE = "not_cancellable", 409, "the job has ended: nothing to cancel"
    NOT_RETRYABLE = "not_retryable", 409, "only a failed or cancelled job runs again"
    STALE_ATTEMPT = "stale_attempt", 409, "expected_attempt is not the job's attempt"
    TOO_LARGE = "too_large", 413, "the body is larger than 64 KB"
    URI_TOO_LONG = "uri_too_long", 414, "the request line is too long"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type", 415, "send JSON (application/json)"
    EXPECTATION_FAILED = "expectation_failed", 417, "an Expect header other than 100-continue"
    MISDIRECTED = "misdirected", 421, "the Host is not one the service answers to"
    RATE_LIMITED = "rate_limited", 429, "too many requests; wait Retry-After seconds"
    HEADERS_TOO_LARGE = "headers_too_large", 431, "too many header fields, or one too large"
    INTERNAL = "internal", 500, "an unexpected error (its detail is only in the log)"
    NOT_IMPLEMENTED = "not_implemented", 501, "an unsupported Transfer-Encoding"
    UNAVAILABLE = "unavailable", 503, "Redis, the voice cache or a setting this needs is missing"


#: The code an error of a status gets when nothing more precise is said.
DEFAULT_CODES: dict[int, ErrorCode] = {}
for _code in ErrorCode:
    DEFAULT_CODES.setdefault(_code.status, _code)
DEFAULT_CODES[400] = ErrorCode.INVALID_BODY  # without a field; with one: invalid_field


def code_for(status: int, field: str | None = None) -> ErrorCode:
    """The code of an error answer with ``status`` that names no more precise one."""
    if status == 400 and field is not None and field != "body":
        return ErrorCode.INVALID_FIELD
    return DEFAULT_CODES.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.CONFLICT)


class ApiError(Exception):
    """Raised by a view to answer with an error; ``field`` names the part of the request at
    fault (None when no single field is); ``code`` defaults to the status's (:func:`code_for`)."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        code: ErrorCode | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})
        self.code = code or code_for(status, field)


def error_body(
    status: int, message: str, field: str | None = None, code: ErrorCode | None = None
) -> dict[str, dict[str, str]]:
    """``{"error": {"code", "message", "field"?}}``."""
    error: dict[str, str] = {"code": (code or code_for(status, field)).value, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    headers: Mapping[str, str] | None = None,
    code: ErrorCode | None = None,
) -> Response:
    response = jsonify(error_body(status, message, field, code))
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.message, exc.field, exc.headers, exc.code)


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
