"""The throttle of failed token attempts (``AUTH_FAILURE_LIMIT`` per client address per minute).

Counted in Redis, ``{KEY_PREFIX}:authfail:{address}``, so every web process and host shares
one count; the key lives a minute from an address's first failure (a fixed window). Past the
limit, every token the address sends gets 429 with ``Retry-After``, a right one too: a guesser
cannot tell a right guess while throttled. Requests without a token and right tokens count
nothing. IPv6 clients are counted per /64 (one host usually holds a whole /64). When Redis
cannot be reached the throttle lets requests through (logged): the service needs Redis for
almost everything else anyway, and a token check must not start failing for it.
"""

from __future__ import annotations

import ipaddress
import logging

import redis

from config.settings import Settings
from worker.web.jsonerrors import ApiError

log = logging.getLogger("akool_audio.web")

WINDOW = 60
MESSAGE = "too many failed token attempts from this address; try again later"


def bucket(address: str) -> str:
    """What ``address`` is counted as: itself, or its /64 for IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64] or "unknown"
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Throttle:
    """Failed token attempts per address in ``r``, at most ``settings.auth_failure_limit`` a
    minute (0: no limit)."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.limit = settings.auth_failure_limit
        self.settings = settings

    def key(self, address: str) -> str:
        return self.settings.key("authfail", bucket(address))

    def admit(self, address: str) -> None:
        """Before a right token is taken: raises 429 while ``address`` is throttled."""
        if self.limit <= 0:
            return
        try:
            with self.r.pipeline(transaction=False) as pipe:
                pipe.get(self.key(address))
                pipe.ttl(self.key(address))
                count, ttl = pipe.execute()
        except redis.RedisError as exc:
            log.warning("token throttle: Redis unavailable (%s); not checked", type(exc).__name__)
            return
        if count is not None and int(count) >= self.limit:
            raise _refusal(ttl)

    def failed(self, address: str) -> None:
        """Count a wrong token of ``address``; raises 429 once it is over the limit."""
        if self.limit <= 0:
            return
        key = self.key(address)
        try:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.set(key, 0, ex=WINDOW, nx=True)
                pipe.incr(key)
                pipe.ttl(key)
                _, count, ttl = pipe.execute()
        except redis.RedisError as exc:
            log.warning("token throttle: Redis unavailable (%s); not counted", type(exc).__name__)
            return
        if int(count) > self.limit:
            if int(count) == self.limit + 1:
                log.warning(
                    "failed token attempts from %s: %d in a minute, throttled for %d s",
                    bucket(address),
                    self.limit,
                    max(int(ttl), 1),
                )
            raise _refusal(ttl)


def _refusal(ttl: int | None) -> ApiError:
    wait = int(ttl) if ttl is not None and int(ttl) > 0 else WINDOW
    return ApiError(429, MESSAGE, headers={"Retry-After": str(wait)})
