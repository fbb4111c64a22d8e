"""The process-wide Redis connection for job records, limits and caches."""

from __future__ import annotations

from functools import lru_cache

import redis

from config.settings import get_settings


@lru_cache(maxsize=4)
def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def get_redis() -> redis.Redis:
    return connect(get_settings().redis_url)
