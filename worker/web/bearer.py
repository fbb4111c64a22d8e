"""Bearer tokens for the web service (``API_TOKENS`` or ``API_TOKENS_FILE``).

Applied to the whole app by path, before any view runs, so a blueprint added later under
``/v1`` or ``/metrics`` is covered without doing anything: only ``/healthz`` and
``/akool/webhook`` (which checks Akool's own signature) are open. A token is compared with every
configured token in constant time and never logged. ``API_AUTH=off`` turns the check off, for a
private network only; without tokens and without it the service refuses to start.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, request

from config.settings import Settings, SettingsError
from worker.web.jsonerrors import MESSAGES, ApiError

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


def token_ok(header: str | None, tokens: tuple[str, ...]) -> bool:
    """True when ``header`` is ``Bearer <one of tokens>``. Every token is compared, in
    constant time, whatever the outcome of the ones before."""
    if not header or not tokens:
        return False
    scheme, _, given = header.partition(" ")
    candidate = given.strip().encode("utf-8", "replace")
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(candidate, token.encode("utf-8", "replace"))
    return matched and scheme.lower() == "bearer"


def install(app: Flask, settings: Settings) -> None:
    """Ask for a token on every protected path of ``app`` (unless ``API_AUTH=off``)."""
    check_settings(settings)
    if not settings.api_auth:
        log.warning("API_AUTH=off: the web service asks no token (a private network only)")
        return
    tokens = settings.api_tokens

    def require_token() -> None:
        if is_protected(request.path) and not token_ok(
            request.headers.get("Authorization"), tokens
        ):
            raise ApiError(401, MESSAGES[401], headers=CHALLENGE)

    app.before_request(require_token)
