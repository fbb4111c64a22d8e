"""Bearer tokens for the web service (``API_TOKENS`` or ``API_TOKENS_FILE``).

Applied to the whole app by path, before any view runs, so a blueprint added later under
``/v1`` or ``/metrics`` is covered without doing anything: only ``/healthz`` and
``/akool/webhook`` (which checks Akool's own signature) are open. A token is compared with every
configured token in constant time and never logged. ``API_AUTH=off`` turns the check off, for a
private network only; without tokens and without it the service refuses to start.

The dashboard's pages call the API from the browser with their session cookie instead of a
token: ``install`` takes the session check of worker/web/session.py (a GET passes with the
session alone, anything else also needs the session's CSRF header).

Wrong tokens are counted per client address (worker/web/throttle.py, ``AUTH_FAILURE_LIMIT``): past
the limit the address gets 429, whatever token it sends.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable

from flask import Flask, request

from config.settings import Settings, SettingsError
from worker.web.jsonerrors import MESSAGES, ApiError
from worker.web.throttle import Throttle

log = logging.getLogger("akool_audio.web")

PROTECTED = ("/v1", "/metrics")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def check_settings(settings: Settings) -> None:
    """Refuse a service that would answer anyone (raises SettingsError naming the settings)."""
    if settings.api_auth and not settings.api_tokens:
        raise SettingsError(
            "the web service needs API tokens: set API_TOKENS (comma-separated, 16+ characters "
            "each) or API_TOKENS_FILE, or set API_AUTH=off to serve without tokens on a "
            "private network"
        )


def is_protected(path: str) -> bool:
    """True for ``/v1``, ``/metrics`` and everything under them."""
    return any(path == p or path.startswith(p + "/") for p in PROTECTED)


def matching_token(given: str, tokens: tuple[str, ...]) -> str | None:
    """The token of ``tokens`` that ``given`` is, or None. Every token is compared, in
    constant time, whatever the outcome of the ones before."""
    candidate = given.encode("utf-8", "replace")
    found = None
    for token in tokens:
        if hmac.compare_digest(candidate, token.encode("utf-8", "replace")) and found is None:
            found = token
    return found if given else None


def token_ok(header: str | None, tokens: tuple[str, ...]) -> bool:
    """True when ``header`` is ``Bearer <one of tokens>`` (compared as ``matching_token``)."""
    if not header or not tokens:
        return False
    scheme, _, given = header.partition(" ")
    matched = matching_token(given.strip(), tokens) is not None
    return matched and scheme.lower() == "bearer"


def install(
    app: Flask,
    settings: Settings,
    session_ok: Callable[[], bool] | None = None,
    throttle: Throttle | None = None,
) -> None:
    """Ask for a token on every protected path of ``app`` (unless ``API_AUTH=off``).
    ``session_ok`` admits a request without a token (the dashboard's session cookie); it may
    raise ApiError itself (a session's POST without its CSRF header). ``throttle`` counts the
    wrong tokens of each client address."""
    check_settings(settings)
    if not settings.api_auth:
        log.warning("API_AUTH=off: the web service asks no token (a private network only)")
        return
    tokens = settings.api_tokens

    def require_token() -> None:
        if not is_protected(request.path):
            return
        header = request.headers.get("Authorization")
        address = request.remote_addr or ""
        if token_ok(header, tokens):
            if throttle is not None:
                throttle.admit(address)
            return
        if header and throttle is not None:
            throttle.failed(address)
        if session_ok is not None and session_ok():
            return
        raise ApiError(401, MESSAGES[401], headers=CHALLENGE)

    app.before_request(require_token)
