"""The one composition root: the Redis client, the HTTP sessions, the Akool client, the job
store and the fleet's shared state, built lazily once per process (after the prefork pool has
forked, so no socket is shared between processes). Workers, the web service and the command
line all build what they need here."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

import redis
import requests

from config.settings import Settings, get_settings
from worker.akool import AkoolClient, MemoryTokenCache
from worker.akool.http import new_session
from worker.fleet.estimator import Estimator
from worker.fleet.ratelimit import RateLimiter
from worker.fleet.tokencache import RedisTokenCache
from worker.fleet.voicecache import VoiceCache
from worker.jobs import JobStore
from worker.maintenance.reports import Reports
from worker.storage import ResultStore, open_store


class Unavailable(RuntimeError):
    """Raised when a service a command needs cannot be reached; the message says how to start it."""


@dataclass(frozen=True)
class Services:
    settings: Settings
    jobs: JobStore
    akool: AkoolClient
    limiter: RateLimiter
    voices: VoiceCache
    http: requests.Session  # downloads and notifications (not Akool)
    store: ResultStore  # where results go (AUDIO_STORE)
    estimator: Estimator  # how long Akool takes, learned (worker/fleet/estimator.py)
    reports: Reports  # what each maintenance run did


@lru_cache(maxsize=4)
def redis_client(url: str) -> redis.Redis:
    """The process-wide Redis client for job records, limits and caches (one pool per URL)."""
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=30,
        retry_on_timeout=True,
    )


def akool_client(
    settings: Settings,
    r: redis.Redis | None,
    get_retries: int = 0,
) -> AkoolClient:
    """The Akool client with every setting that bounds it and the fleet's token cache in ``r``
    (None: a cache in this process, for a command line without Redis). Workers retry nothing in
    line (``get_retries=0``: a task reschedules instead of sleeping in a slot); a command-line
    call may retry a safe GET a few times."""
    return AkoolClient(
        settings.akool_base_url,
        api_key=settings.akool_api_key,
        client_id=settings.akool_client_id,
        client_secret=settings.akool_client_secret,
        connect_timeout=settings.akool_connect_timeout,
        read_timeout=settings.akool_read_timeout,
        get_retries=get_retries,
        token_cache=MemoryTokenCache()
        if r is None
        else RedisTokenCache(r, settings.key("akool-token")),
        max_words=settings.akool_max_words,
        webhook_allow_hosts=settings.allow_private_hosts,
    )


def rate_limiter(settings: Settings, r: redis.Redis) -> RateLimiter:
    return RateLimiter(
        r,
        settings.key("ratelimit", "akool"),
        settings.akool_rate_limit,
        settings.akool_rate_burst,
        held_prefix=settings.key("token-held"),
    )


def reachable_redis(settings: Settings) -> redis.Redis | None:
    """The Redis client when Redis answers, else None."""
    r = redis_client(settings.redis_url)
    try:
        r.ping()
    except redis.RedisError:
        return None
    return r


def reachable_job_store(settings: Settings | None = None) -> JobStore:
    """The job store of a command-line or web process, once Redis answers; else Unavailable."""
    s = settings or get_settings()
    r = redis_client(s.redis_url)
    try:
        r.ping()
    except redis.RedisError as exc:
        raise Unavailable(
            f"cannot reach Redis at {s.redacted()['REDIS_URL']} ({exc}).\n"
            "Start one with `redis-server` (Debian: apt-get install redis-server) or set "
            "REDIS_URL; `make demo` starts a private one for you."
        ) from None
    return JobStore(r, s)


def build(settings: Settings) -> Services:
    settings.require_credentials()
    r = redis_client(settings.redis_url)
    return Services(
        settings=settings,
        jobs=JobStore(r, settings),
        akool=akool_client(settings, r),
        limiter=rate_limiter(settings, r),
        voices=VoiceCache(r, settings),
        http=new_session(hosts=8),  # downloads and notifications reach many hosts
        store=open_store(settings),
        estimator=Estimator(r, settings.key("estimate", "samples")),
        reports=Reports(r, settings),
    )


@lru_cache(maxsize=1)
def _cached(pid: int) -> Services:
    return build(get_settings())


def services() -> Services:
    return _cached(os.getpid())
