"""The per-token limit on state-changing requests (``API_RATE_LIMIT`` per second, bursts of
``API_RATE_BURST``): POST, PUT, PATCH and DELETE under ``/v1``. Each token (or dashboard
session, or client address with ``API_AUTH=off``) has its own token bucket in Redis, the
fleet's (:class:`worker.fleet.ratelimit.RateLimiter`, Redis's own clock), so every web
process shares it; past it, 429 with ``Retry-After`` before the view runs. Kept apart from
``AUTH_FAILURE_LIMIT`` (worker/web/throttle.py), which counts wrong tokens per address."""

from __future__ import annotations

import hashlib
import logging
import math

import redis
from flask import Flask, request

from config.settings import Settings
from worker.fleet.ratelimit import RateLimiter
from worker.web.jsonerrors import ApiError
from worker.web.session import COOKIE

log = logging.getLogger("akool_audio.web")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def caller_of() -> str:
    """Who the request counts against: a digest of its bearer token, else of its session
    cookie, else its address (never the secret itself as a key)."""
    header = request.headers.get("Authorization") or ""
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        seed = "token:" + given.strip()
    elif request.cookies.get(COOKIE):
        seed = "session:" + request.cookies[COOKIE]
    else:
        seed = "addr:" + (request.remote_addr or "")
    return hashlib.sha256(seed.encode("utf-8", "replace")).hexdigest()[:32]


def install(app: Flask, r: redis.Redis, settings: Settings) -> None:
    """Limit ``app``'s state-changing ``/v1`` requests per caller (after the token check)."""
    rate, burst = settings.api_rate_limit, settings.api_rate_burst
    if rate <= 0:
        return

    def limit() -> None:
        if request.method not in WRITES or not request.path.startswith("/v1/"):
            return
        if request.url_rule is None:
            return  # 404 or 405: refused anyway, nothing to count
        bucket = RateLimiter(r, settings.key("api-rate", caller_of()), rate, burst)
        try:
            wait, admitted = bucket.reserve(max_wait=0)
        except redis.RedisError as exc:
            # Without Redis the view fails on its own (503); a limit is no reason to refuse.
            log.warning("API_RATE_LIMIT not checked: %s", type(exc).__name__)
            return
        if not admitted:
            after = max(1, math.ceil(wait))
            raise ApiError(
                429,
                f"too many state-changing requests for this token (API_RATE_LIMIT {rate:g}/s, "
                f"burst API_RATE_BURST {burst:g}); try again in {after} s",
                headers={"Retry-After": str(after)},
            )

    app.before_request(limit)
