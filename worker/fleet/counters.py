"""Counters every process adds to and the whole fleet reads: Akool calls by endpoint and code,
rate-limit waits, webhook callbacks by outcome, credits, and each finished job's state, error
code, duration and polls.

A step must not pay a Redis round trip for a counter: each process counts in memory
(worker/fleet/countbatch.py), and a flusher thread, started on the first count in each process
(a forked child starts its own), writes the counts every ``FLUSH_INTERVAL`` seconds and at exit
into the minute's bucket ``{KEY_PREFIX}:metrics:{minute}`` and the all-time
``{KEY_PREFIX}:metrics:total`` (the names: worker/fleet/metricnames.py). The web service reads
both (worker/web/stats.py, worker/web/metrics.py), so every host answers the same numbers.

The target is this process's settings (``REDIS_URL``, ``KEY_PREFIX``) unless ``configure``
points it elsewhere.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import redis

from config import redisconn
from config.settings import SettingsError, get_settings
from worker.akool import http as akool_http
from worker.fleet.countbatch import Counters
from worker.fleet.metricnames import (
    BUCKET_TTL,
    CREDITS,
    DURATION,
    DURATION_BUCKETS,
    POLL_BUCKETS,
    POLLS,
    RATELIMIT_WAIT_SECONDS,
    RATELIMIT_WAITS,
    SENT_AT,
    SUCCESS_CODE,
    akool_field,
    bound_name,
    bucket_key,
    endpoint_of,
    total_key,
    webhook_outcome,
)
from worker.jobs import Job, JobState

# The names of the metrics and the batching counters live in metricnames and countbatch; the
# callers (tasks, steps, the web service, tests) read them all here.
__all__ = [
    "BUCKET_TTL",
    "CREDITS",
    "DURATION",
    "DURATION_BUCKETS",
    "POLLS",
    "POLL_BUCKETS",
    "RATELIMIT_WAITS",
    "RATELIMIT_WAIT_SECONDS",
    "SENT_AT",
    "SUCCESS_CODE",
    "Counters",
    "akool_exchange",
    "bound_name",
    "bucket_key",
    "configure",
    "counts_webhook",
    "credits",
    "endpoint_of",
    "flush",
    "flush_at_exit",
    "job_finished",
    "ratelimit_wait",
    "stamp_sent_at",
    "total_key",
    "webhook",
    "webhook_outcome",
]

log = logging.getLogger(__name__)


def _from_settings() -> tuple[redis.Redis, str] | None:
    try:
        s = get_settings()
    except SettingsError as exc:
        log.debug("fleet counters are off in this process: %s", exc)
        return None
    # The same target as every other client (TLS, ACL user, Sentinel: config/redisconn.py).
    client = redisconn.connect(
        redisconn.redis_target(s), socket_connect_timeout=2, socket_timeout=5
    )
    return client, s.key_prefix


# -- this process's counters -----------------------------------------------------------------

_current: Counters | None = None
_create = threading.Lock()
_connect: Callable[[], tuple[redis.Redis, str] | None] = _from_settings


def _counters() -> Counters:
    current = _current
    if current is not None and current.pid == os.getpid():
        return current
    return _new()


def _new() -> Counters:
    global _current
    with _create:
        if _current is None or _current.pid != os.getpid():
            # A forked child starts empty: what the parent counted is the parent's to write.
            _current = Counters(_connect)
            try:
                _current.start()
            except RuntimeError as exc:  # no thread to spare: counts wait for flush() or exit
                log.warning("fleet counters: no flusher thread (%s)", exc)
        return _current


def _after_fork() -> None:
    global _current, _create
    _current, _create = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def _fixed(r: redis.Redis, key_prefix: str) -> tuple[redis.Redis, str]:
    return r, key_prefix


def configure(r: redis.Redis | None, key_prefix: str = "") -> None:
    """Write this process's counters to ``r`` under ``key_prefix`` from now on (tests, tools),
    what was counted before included; None: back to the settings' REDIS_URL and KEY_PREFIX."""
    global _connect
    _connect = _from_settings if r is None else functools.partial(_fixed, r, key_prefix)
    current = _current
    if current is not None and current.pid == os.getpid():
        current.connect_with(_connect)


def flush(*, quiet: bool = False) -> bool:
    """Write this process's counts now (tests; the flusher thread does it on its own)."""
    current = _current
    if current is None or current.pid != os.getpid():
        return True
    return current.flush(quiet=quiet)


def flush_at_exit(**_: object) -> None:
    """Write what is left; for ``atexit`` and Celery's ``worker_process_shutdown`` (a prefork
    child leaves through ``os._exit``, which runs no ``atexit`` handler)."""
    try:
        flush(quiet=True)  # a command run without Redis need not hear about counters
    except Exception:
        log.exception("fleet counters: the last flush failed")


atexit.register(flush_at_exit)


# -- what is counted -------------------------------------------------------------------------


def akool_exchange(path: str, code: str) -> None:
    """One exchange with Akool (worker/akool/http.py tells its ``observers``)."""
    _counters().add(akool_field(endpoint_of(path), code))


if akool_exchange not in akool_http.observers:
    akool_http.observers.append(akool_exchange)


def ratelimit_wait(seconds: float) -> None:
    """A job sent away by the shared rate limit for ``seconds``."""
    c = _counters()
    c.add(RATELIMIT_WAITS)
    c.add_float(RATELIMIT_WAIT_SECONDS, seconds)


def credits(amount: float) -> None:
    """Credits Akool reports as spent (v4; v3 reports none)."""
    _counters().add_float(CREDITS, amount)


def job_finished(job: Job, now: float | None = None) -> None:
    """A job's end, counted once (by the finisher that claimed it): its state, error code,
    duration (completed - created) and polls."""
    c = _counters()
    c.add(f"jobs_done:{job.state.value}")
    if job.state is JobState.FAILED:
        c.add(f"jobs_failed:{job.error_code or 'unknown'}")
    end = job.completed_at or (now if now is not None else time.time())
    c.observe(DURATION, DURATION_BUCKETS, max(0.0, end - job.created_at))
    c.observe(POLLS, POLL_BUCKETS, float(job.polls))


def webhook(outcome: str) -> None:
    _counters().add(f"webhook:{outcome}")


class _Answer(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def message(self) -> str: ...


P = ParamSpec("P")
A = TypeVar("A", bound=_Answer)


def counts_webhook(handle: Callable[P, A]) -> Callable[P, A]:
    """Count each answer of a webhook handler by outcome (``webhook_outcome``); an exception
    counts as ``error`` and goes on."""

    @functools.wraps(handle)
    def counted(*args: P.args, **kwargs: P.kwargs) -> A:
        try:
            answer = handle(*args, **kwargs)
        except Exception:
            webhook("error")
            raise
        webhook(webhook_outcome(answer.status, answer.message))
        return answer

    return counted


def stamp_sent_at(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Celery's ``before_task_publish``: stamp each message we send with the time it was sent,
    so /v1/stats can tell how long the oldest message of a queue has waited."""
    if headers is not None:
        headers[SENT_AT] = time.time()
