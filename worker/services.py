"""The one composition root: the Redis client, the HTTP sessions, the Akool client, the job
store and the fleet's shared state, built once per process from one :class:`Settings` (after the
prefork pool has forked, so no socket is shared between processes). Workers and the command line
use :func:`services`; the web service builds its own from its app's settings with :func:`build`
(worker/web/deps.py is a view over it). Building opens no connection.

Only what calls Akool (submit, poll, the voice list) needs Akool's credentials: the client is
made on first use, and without credentials that use raises SettingsError naming the variables.
A worker refuses to start without them (worker/celery.py); cancel, retry, the job pages and the
command line's job commands work without."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Generic, TypeVar

import redis
import requests

from config import redisconn
from config.settings import Settings, get_settings
from worker.akool import AkoolClient, MemoryTokenCache
from worker.egress.pinned import egress_session
from worker.fleet.clonecache import CloneCache
from worker.fleet.estimator import Estimator
from worker.fleet.ratelimit import RateLimiter
from worker.fleet.tokencache import RedisTokenCache
from worker.fleet.voicecache import VoiceCache
from worker.jobs import JobStore
from worker.maintenance.reports import Reports
from worker.storage import ResultStore, open_store


class Unavailable(RuntimeError):
    """Raised when a service a command needs cannot be reached; the message says how to start it."""


T = TypeVar("T")


class Once(Generic[T]):
    """A value made on its first use, once, whichever thread asks first; a ``make`` that raises
    is tried again on the next use."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._make()
        return self._value


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis  # the client the others share (one pool per process and target)
    jobs: JobStore
    _akool: Once[AkoolClient] = field(repr=False)
    limiter: RateLimiter
    voices: VoiceCache
    http: requests.Session  # downloads and notifications (not Akool)
    store: ResultStore  # where results go (AUDIO_STORE)
    estimator: Estimator  # how long Akool takes, learned (worker/fleet/estimator.py)
    reports: Reports  # what each maintenance run did
    clones: CloneCache  # v4 voices cloned per sample (worker/fleet/clonecache.py)

    @property
    def akool(self) -> AkoolClient:
        """Akool's client, made on first use. Raises SettingsError naming the variables when no
        Akool credential is set."""
        return self._akool.get()


#: The job store's, limiter's and caches' client options (config/redisconn.py adds TLS, the
#: ACL user and Sentinel). redis-py retries a command that met a dropped connection three
#: times with backoff, long enough to ride out a Sentinel failover's few seconds.
CLIENT_OPTIONS: dict[str, Any] = {
    "decode_responses": True,
    "socket_connect_timeout": 5,
    "socket_timeout": 10,
    "health_check_interval": 30,
    "retry_on_timeout": True,
}


@lru_cache(maxsize=4)
def redis_client(where: Settings | str) -> redis.Redis:
    """The process-wide Redis client for job records, limits and caches (one pool per target):
    ``REDIS_URL`` with its TLS, ACL user and Sentinel settings, or a plain ``redis://`` URL.
    Behind Sentinels it is a client of whichever server is the master now."""
    settings = where if isinstance(where, Settings) else Settings(redis_url=where)
    return redisconn.connect(redisconn.redis_target(settings), **CLIENT_OPTIONS)


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
        plan=settings.akool_plan,
    )


def rate_limiter(settings: Settings, r: redis.Redis) -> RateLimiter:
    return RateLimiter(
        r,
        settings.key("ratelimit", "akool"),
        settings.akool_rate_limit,
        settings.akool_rate_burst,
        held_prefix=settings.key("token-held"),
    )


def check_redis_at_start(**_: object) -> None:
    """At a worker's or beat's start (worker/celery.py): stop with a clear message when the
    Redis settings cannot work (a TLS certificate that does not verify with REDIS_TLS_CA_FILE,
    a user or password Redis refuses), rather than retry a connection forever. A Redis that
    is only down is said plainly; Celery keeps trying to reach it."""
    settings = get_settings()
    target = redisconn.redis_target(settings)
    try:
        problem = redisconn.problem(target)
    except redisconn.RedisConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if problem is not None:
        print(f"Redis ({target.describe()}) does not answer yet: {problem}", file=sys.stderr)


def reachable_redis(settings: Settings) -> redis.Redis | None:
    """The Redis client when Redis answers, else None."""
    r = redis_client(settings)
    try:
        r.ping()
    except redis.RedisError:
        return None
    return r


def reachable_job_store(settings: Settings | None = None) -> JobStore:
    """The job store of a command-line process (of :func:`services`, or built from
    ``settings``), once Redis answers; else Unavailable."""
    svc = services() if settings is None else build(settings)
    try:
        svc.redis.ping()
    except redis.RedisError as exc:
        raise Unavailable(
            f"cannot reach Redis at {svc.settings.redacted()['REDIS_URL']} ({exc}).\n"
            "Start one with `redis-server` (Debian: apt-get install redis-server) or set "
            "REDIS_URL; `make demo` starts a private one for you."
        ) from None
    return svc.jobs


def duration_model(settings: Settings, r: redis.Redis) -> Estimator:
    """The fleet's model of how long Akool takes (worker/fleet/estimator.py)."""
    return Estimator(r, settings.key("estimate", "samples"))


def build(settings: Settings) -> Services:
    """Everything a process may use, from ``settings``; the Akool client on first use."""
    r = redis_client(settings)

    def akool() -> AkoolClient:
        settings.require_credentials()
        return akool_client(settings, r)

    return Services(
        settings=settings,
        redis=r,
        jobs=JobStore(r, settings),
        _akool=Once(akool),
        limiter=rate_limiter(settings, r),
        voices=VoiceCache(r, settings),
        http=egress_session(hosts=8),  # downloads and notifications: checked addresses only
        store=open_store(settings),
        estimator=duration_model(settings, r),
        reports=Reports(r, settings),
        clones=CloneCache(r, settings),
    )


@lru_cache(maxsize=1)
def _cached(pid: int) -> Services:
    return build(get_settings())


def services() -> Services:
    """This process's services, from the process's settings (read on the first call)."""
    return _cached(os.getpid())
