"""The long-lived objects a worker process needs, built lazily once per process (after the
prefork pool has forked, so no socket is shared between processes)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import requests
from requests.adapters import HTTPAdapter

from config.settings import Settings, get_settings
from worker.akool import AkoolClient
from worker.estimate import Estimator
from worker.jobs import JobStore
from worker.ratelimit import RateLimiter
from worker.store import connect
from worker.tokencache import RedisTokenCache


@dataclass(frozen=True)
class Services:
    settings: Settings
    jobs: JobStore
    akool: AkoolClient
    limiter: RateLimiter
    http: requests.Session  # downloads and notifications (not Akool)
    estimator: Estimator  # how long Akool takes, learned (worker/estimate.py)


def build(settings: Settings) -> Services:
    settings.require_credentials()
    r = connect(settings.redis_url)
    http = requests.Session()
    http.mount("http://", HTTPAdapter(pool_connections=8, pool_maxsize=32))
    http.mount("https://", HTTPAdapter(pool_connections=8, pool_maxsize=32))
    akool = AkoolClient(
        settings.akool_base_url,
        api_key=settings.akool_api_key,
        client_id=settings.akool_client_id,
        client_secret=settings.akool_client_secret,
        connect_timeout=settings.akool_connect_timeout,
        read_timeout=settings.akool_read_timeout,
        get_retries=0,  # tasks reschedule instead of sleeping in a slot
        token_cache=RedisTokenCache(r, settings.key("akool-token")),
        max_words=settings.akool_max_words,
        webhook_allow_hosts=settings.allow_private_hosts,
    )
    limiter = RateLimiter(
        r, settings.key("ratelimit", "akool"), settings.akool_rate_limit, settings.akool_rate_burst
    )
    estimator = Estimator(r, settings.key("estimate", "samples"))
    return Services(settings, JobStore(r, settings), akool, limiter, http, estimator)


@lru_cache(maxsize=1)
def _cached(pid: int) -> Services:
    return build(get_settings())


def services() -> Services:
    return _cached(os.getpid())
