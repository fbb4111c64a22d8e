"""The getToken bearer token cached in Redis for the whole fleet, with one refresher at a time."""

from __future__ import annotations

import time

import redis

from worker.lua import source


class RedisTokenCache:
    """Implements ``worker.akool.TokenCache`` on a Redis key.

    When the token is missing, one process takes a short lock and fetches it; the others wait
    (bounded) for it to appear instead of all calling getToken at once.
    """

    def __init__(
        self, r: redis.Redis, key: str, ttl_seconds: int = 7 * 86400, wait_seconds: float = 5.0
    ) -> None:
        self.r = r
        self.key = key
        self.lock_key = key + ":refresh"
        self.ttl = ttl_seconds
        self.wait_seconds = wait_seconds
        self._invalidate = r.register_script(source("delete_if_equals"))
        self._refreshing_until = 0.0

    def get(self) -> str | None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            token = self.r.get(self.key)
            if token:
                return str(token)
            if time.monotonic() < self._refreshing_until:
                return None  # this process holds the refresh lock: it must not wait on itself
            if self.r.set(self.lock_key, "1", nx=True, ex=15):
                # Another refresher may have stored the token and released the lock between
                # our read and our lock: look again before fetching a second one.
                token = self.r.get(self.key)
                if token:
                    self.r.delete(self.lock_key)
                    return str(token)
                self._refreshing_until = time.monotonic() + 15
                return None  # we are the refresher: the client fetches and calls set()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)  # ok-sleep: bounded wait while another worker refreshes (rare)

    def set(self, token: str) -> None:
        self.r.set(self.key, token, ex=self.ttl)
        self.r.delete(self.lock_key)
        self._refreshing_until = 0.0

    def invalidate(self, token: str) -> None:
        self._invalidate(keys=[self.key], args=[token])
