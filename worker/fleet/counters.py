"""Counters every process adds to and the whole fleet reads: Akool calls by endpoint and code,
rate-limit waits, webhook callbacks by outcome, credits, and each finished job's state, error
code, duration and polls.

A step must not pay a Redis round trip for a counter. Each process adds to counters in memory
(thread-safe); a daemon thread, started on the first count in each process (a forked child
starts its own), writes them every ``FLUSH_INTERVAL`` seconds and at exit in one pipelined
batch: ``HINCRBY`` into the minute's bucket ``{KEY_PREFIX}:metrics:{minute}`` (kept
``BUCKET_TTL`` seconds) and into the all-time ``{KEY_PREFIX}:metrics:total``. The web service
reads both (worker/web/stats.py, worker/web/metrics.py), so every host answers the same numbers.

Fields: ``akool:{endpoint}:{code}``, ``ratelimit:waits``, ``ratelimit:wait_seconds``,
``webhook:{outcome}``, ``credits``, ``jobs_done:{state}``, ``jobs_failed:{code}``, and the
histograms ``job_duration:{bound}`` and ``job_polls:{bound}`` (a job counted in the first
bucket it fits, not cumulatively) with ``:_sum`` and ``:_count``.

The target is this process's settings (``REDIS_URL``, ``KEY_PREFIX``) unless ``configure``
points it elsewhere. Counts that cannot be written (Redis away) are kept for the next batch,
so a batch whose answer was lost may count twice; a batch Redis refuses is dropped and logged.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

import redis

from config import redisconn
from config.settings import SettingsError, get_settings
from worker.akool import http as akool_http
from worker.akool.speech import APIS
from worker.jobs import Job, JobState

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 5.0
BUCKET_TTL = 2 * 3600
SENT_AT = "sent_at"  # the header our publishers stamp (stamp_sent_at); stats read the age from it

#: Akool's paths by their short names in the metrics, as each API's adapter names them.
ENDPOINTS = {path: name for api in APIS.values() for path, name in api.endpoints.items()}
#: Paths that end in an id: by prefix.
ENDPOINT_PREFIXES = {
    path: name for api in APIS.values() for path, name in api.endpoint_prefixes.items()
}
SUCCESS_CODE = str(akool_http.SUCCESS)
RATELIMIT_WAITS = "ratelimit:waits"
RATELIMIT_WAIT_SECONDS = "ratelimit:wait_seconds"
CREDITS = "credits"
DURATION = "job_duration"
POLLS = "job_polls"
# Upper bounds of the histogram buckets; +Inf is the count.
DURATION_BUCKETS = (5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
POLL_BUCKETS = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 55.0)


def bucket_key(prefix: str, minute: int) -> str:
    """The hash of one minute's counts (``minute`` = epoch seconds // 60)."""
    return f"{prefix}:metrics:{minute}"


def total_key(prefix: str) -> str:
    """The hash of all-time counts."""
    return f"{prefix}:metrics:total"


def bound_name(bound: float) -> str:
    """A bucket bound as a field name and Prometheus' ``le`` show it: "5", "0.5", "+Inf"."""
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else repr(bound)


def akool_field(endpoint: str, code: str) -> str:
    return f"akool:{endpoint}:{code}"


def endpoint_of(path: str) -> str:
    """The short name of an Akool path (create, clone, detail, voices, token; v4_tts,
    v4_detail, v4_clone, v4_voices, v4_voice_detail), else "other"."""
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    return next((n for p, n in ENDPOINT_PREFIXES.items() if path.startswith(p)), "other")


def webhook_outcome(status: int, message: str) -> str:
    """The outcome of a webhook answer (worker/web/webhook.py, ``Receiver.handle``): ok,
    duplicate, not_final, already_final, stale (an earlier attempt's), expired, bad_request,
    bad_signature, unknown_id."""
    if status == 200:
        if message in ("ok", "duplicate"):
            return message
        if message.endswith(" noted"):
            return "not_final"
        if message.startswith("job already"):
            return "already_final"
        if message.startswith("stale callback"):
            return "stale"
        return "expired" if message == "job record expired" else "other"
    named = {400: "bad_request", 401: "bad_signature", 404: "unknown_id", 413: "too_large"}
    return named.get(status, f"http_{status}")


class Counters:
    """Counts kept in memory and written to Redis in batches.

    ``connect`` gives ``(client, key_prefix)`` when the first batch is written (None: counting
    is off in this process). ``start`` runs the flusher thread; ``flush`` writes now.
    """

    def __init__(
        self,
        connect: Callable[[], tuple[redis.Redis, str] | None],
        *,
        interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._target: tuple[redis.Redis, str] | None = None
        self._connected = False
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._ints: dict[tuple[int, str], int] = {}
        self._floats: dict[tuple[int, str], float] = {}
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(self, field: str, amount: int = 1) -> None:
        key = (int(self._clock() // 60), field)
        with self._lock:
            self._ints[key] = self._ints.get(key, 0) + amount

    def add_float(self, field: str, amount: float) -> None:
        key = (int(self._clock() // 60), field)
        with self._lock:
            self._floats[key] = self._floats.get(key, 0.0) + amount

    def observe(self, name: str, bounds: tuple[float, ...], value: float) -> None:
        """One observation of the histogram ``name``."""
        bound = next((b for b in bounds if value <= b), math.inf)
        key_minute = int(self._clock() // 60)
        with self._lock:
            for field in (f"{name}:{bound_name(bound)}", f"{name}:_count"):
                key = (key_minute, field)
                self._ints[key] = self._ints.get(key, 0) + 1
            key = (key_minute, f"{name}:_sum")
            self._floats[key] = self._floats.get(key, 0.0) + value

    def pending(self) -> int:
        with self._lock:
            return len(self._ints) + len(self._floats)

    def flush(self, *, quiet: bool = False) -> bool:
        """Write what was counted in one pipelined batch; False when it could not be written
        (the counts are kept for the next batch). ``quiet``: say so at debug level only."""
        with self._lock:
            ints, self._ints = self._ints, {}
            floats, self._floats = self._floats, {}
        if not ints and not floats:
            return True
        target = self._target_now()
        if target is None:
            return True  # counting is off in this process
        r, prefix = target
        try:
            self._write(r, prefix, ints, floats)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._keep(ints, floats)
            if not self._failing:
                level = logging.DEBUG if quiet else logging.WARNING
                log.log(level, "could not write fleet counters (%s); kept for later", exc)
            self._failing = True
            return False
        except redis.RedisError as exc:
            # Refused by Redis (a key of another type, out of memory): the rest of the batch
            # was applied, so keeping it would count it twice.
            log.error("Redis refused fleet counters (%s); this batch is dropped", exc)
            return False
        self._failing = False
        return True

    def connect_with(self, connect: Callable[[], tuple[redis.Redis, str] | None]) -> None:
        """Write the next batches where ``connect`` says."""
        self._connect, self._connected = connect, False

    def _target_now(self) -> tuple[redis.Redis, str] | None:
        if not self._connected:
            self._target = self._connect()
            self._connected = True
        return self._target

    @staticmethod
    def _write(
        r: redis.Redis,
        prefix: str,
        ints: dict[tuple[int, str], int],
        floats: dict[tuple[int, str], float],
    ) -> None:
        total = total_key(prefix)
        minutes: set[int] = set()
        with r.pipeline(transaction=True) as pipe:
            for (minute, field), n in ints.items():
                pipe.hincrby(bucket_key(prefix, minute), field, n)
                pipe.hincrby(total, field, n)
                minutes.add(minute)
            for (minute, field), x in floats.items():
                pipe.hincrbyfloat(bucket_key(prefix, minute), field, x)
                pipe.hincrbyfloat(total, field, x)
                minutes.add(minute)
            for minute in minutes:
                pipe.expire(bucket_key(prefix, minute), BUCKET_TTL)
            pipe.execute()

    def _keep(self, ints: dict[tuple[int, str], int], floats: dict[tuple[int, str], float]) -> None:
        with self._lock:
            for key, n in ints.items():
                self._ints[key] = self._ints.get(key, 0) + n
            for key, x in floats.items():
                self._floats[key] = self._floats.get(key, 0.0) + x

    def start(self) -> None:
        """Start the flusher thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fleet-counters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # a counter must never end the thread that writes them
                log.exception("fleet counters: flush failed")


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
