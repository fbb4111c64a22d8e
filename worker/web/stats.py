"""The fleet's statistics, read from Redis, so every web host answers the same numbers
(``GET /v1/stats``; ``/metrics`` reads the same functions).

Queues are kombu's Redis lists: ``name`` and, for priorities, ``name\\x06\\x16{3,6,9}``. kombu
pushes on the left and pops on the right, so the oldest message is ``LINDEX -1``; its age comes
from the ``sent_at`` header our publishers stamp (worker/fleet/counters.py, ``stamp_sent_at``)
and is unknown (None) when the oldest message was sent by a client that does not stamp.
A message a worker has taken but not acked sits in kombu's ``unacked`` hash, and so does every
countdown (ETA) message: a worker holds those in memory until they are due.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from celery import Celery

from config.celeryconfig import QUEUES, celery_config
from config.settings import Settings
from worker.broker import compat
from worker.broker.compat import headers_of, queue_keys, unacked_eta
from worker.fleet import counters
from worker.fleet.ratelimit import RateLimiter
from worker.jobs import JobState, JobStore

DEFAULT_QUEUE = "celery"  # where a caller that names no queue sends
QUEUE_NAMES = (*QUEUES, DEFAULT_QUEUE)
UNACKED, UNACKED_SCAN = compat.UNACKED_KEY, 2000
WARN_SAMPLE = 100  # messages read from a queue nobody consumes, to name their tasks
WORKERS_TTL = 10.0


@dataclass(frozen=True)
class QueueState:
    depth: int
    oldest_age: float | None  # seconds; 0 when empty, None when the oldest carries no stamp


@dataclass(frozen=True)
class Unacked:
    total: int  # taken by a worker, not acked yet (running, prefetched or waiting a countdown)
    countdown: int  # of those, waiting for their ETA
    scanned: int  # how many were read to count ``countdown`` (all, below UNACKED_SCAN)


def broker_app(settings: Settings) -> Celery:
    """A Celery app on the broker of ``settings``, only to ask the workers what they consume."""
    return Celery("akool_audio_stats", config_source=celery_config(settings), set_as_current=False)


class LiveWorkers:
    """The live workers and the queues each consumes (``inspect().active_queues()``, which waits
    ``timeout`` seconds for answers), asked at most every ``ttl`` seconds per process."""

    def __init__(
        self,
        app: Celery,
        ttl: float = WORKERS_TTL,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.ttl, self.timeout, self._clock = app, ttl, timeout, clock
        self._lock = threading.Lock()
        self._answer: dict[str, list[str]] = {}
        self._at = -float("inf")

    def get(self) -> dict[str, list[str]]:
        with self._lock:  # one request asks; the others wait for its answer
            if self._clock() - self._at >= self.ttl:
                self._answer = self._ask()
                self._at = self._clock()
            return self._answer

    def _ask(self) -> dict[str, list[str]]:
        replies = self.app.control.inspect(timeout=self.timeout).active_queues() or {}
        return {
            name: sorted(q["name"] for q in queues if isinstance(q, dict) and "name" in q)
            for name, queues in sorted(replies.items())
        }


@dataclass(frozen=True)
class Sources:
    """What the statistics read. ``r`` is the broker's and the job store's Redis (one server:
    REDIS_URL) with ``decode_responses=True``; ``workers`` is None where no one asks Celery."""

    r: redis.Redis
    settings: Settings
    jobs: JobStore
    limiter: RateLimiter
    workers: LiveWorkers | None = None
    queues: tuple[str, ...] = field(default=QUEUE_NAMES)


def _sent_at(raw: str) -> float | None:
    value = headers_of(raw).get(counters.SENT_AT)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def queues(r: redis.Redis, names: Iterable[str], now: float) -> dict[str, QueueState]:
    """Depth and oldest message age of each queue, in one round trip."""
    names = list(names)
    with r.pipeline(transaction=False) as pipe:
        for name in names:
            for key in queue_keys(name):
                pipe.llen(key)
                pipe.lindex(key, -1)
        replies = pipe.execute()
    out, i = {}, 0
    for name in names:
        depth, ages, unknown = 0, [], False
        for _ in compat.PRIORITY_STEPS:
            length, tail = replies[i], replies[i + 1]
            i += 2
            depth += int(length)
            if tail is not None:
                sent = _sent_at(tail)
                unknown = unknown or sent is None
                ages.append(0.0 if sent is None else max(0.0, now - sent))
        out[name] = QueueState(depth, None if unknown else max(ages, default=0.0))
    return out


def unacked_count(r: redis.Redis) -> int:
    return int(r.hlen(UNACKED))


def unacked(r: redis.Redis, now: float, limit: int = UNACKED_SCAN) -> Unacked:
    """kombu's unacked messages and, of the first ``limit`` read, those waiting for an ETA."""
    total = unacked_count(r)
    scanned = countdown = 0
    for _, raw in r.hscan_iter(UNACKED, count=500):
        eta = unacked_eta(raw)
        countdown += eta is not None and eta > now
        scanned += 1
        if scanned >= limit:
            break
    return Unacked(total, countdown, min(scanned, total))


def totals(r: redis.Redis, prefix: str) -> dict[str, float]:
    """The fleet's all-time counters (worker/fleet/counters.py)."""
    raw = cast(dict[str, str], r.hgetall(counters.total_key(prefix)))
    return {k: float(v) for k, v in raw.items()}


def last_minutes(r: redis.Redis, prefix: str, now: float, minutes: int = 60) -> dict[str, float]:
    """The counters of the last ``minutes`` minutes, summed (buckets of the current minute
    and the ``minutes - 1`` before it)."""
    current = int(now // 60)
    with r.pipeline(transaction=False) as pipe:
        for minute in range(current - minutes + 1, current + 1):
            pipe.hgetall(counters.bucket_key(prefix, minute))
        buckets = pipe.execute()
    summed: dict[str, float] = {}
    for bucket in buckets:
        for k, v in bucket.items():
            summed[k] = summed.get(k, 0.0) + float(v)
    return summed


def akool_calls(fields: dict[str, float]) -> dict[tuple[str, str], int]:
    """(endpoint, code) -> calls, from counter fields ``akool:{endpoint}:{code}``."""
    out = {}
    for name, n in fields.items():
        kind, _, rest = name.partition(":")
        endpoint, _, code = rest.partition(":")
        if kind == "akool" and code:
            out[(endpoint, code)] = int(n)
    return out


def akool_last_hour(r: redis.Redis, prefix: str, now: float) -> dict[str, Any]:
    calls = akool_calls(last_minutes(r, prefix, now))
    errors: dict[str, int] = {}
    by_endpoint: dict[str, dict[str, int]] = {}
    for (endpoint, code), n in sorted(calls.items()):
        if code != counters.SUCCESS_CODE:
            errors[code] = errors.get(code, 0) + n
            by_endpoint.setdefault(endpoint, {})[code] = n
    return {"calls": sum(calls.values()), "errors": errors, "errors_by_endpoint": by_endpoint}


def in_flight(by_state: dict[str, int]) -> int:
    """Jobs not in a final state."""
    final = {s.value for s in JobState if s.is_final}
    return sum(n for state, n in by_state.items() if state not in final)


def _tasks_in(r: redis.Redis, queue: str, sample: int) -> dict[str, int]:
    """Task names among the oldest ``sample`` messages of each list of ``queue``."""
    with r.pipeline(transaction=False) as pipe:
        for key in queue_keys(queue):
            pipe.lrange(key, -sample, -1)
        lists = pipe.execute()
    names: dict[str, int] = {}
    for raw in (m for messages in lists for m in messages):
        task = headers_of(raw).get("task")
        if isinstance(task, str):
            names[task] = names.get(task, 0) + 1
    return names


def warnings(
    r: redis.Redis,
    states: dict[str, QueueState],
    workers: dict[str, list[str]],
    sample: int = WARN_SAMPLE,
) -> list[str]:
    """A sentence for each queue holding ``audio.*`` messages that no live worker consumes."""
    consumed = {q for queues in workers.values() for q in queues}
    out = []
    for queue, state in states.items():
        if state.depth == 0 or queue in consumed:
            continue
        ours = {t: n for t, n in _tasks_in(r, queue, sample).items() if t.startswith("audio.")}
        if not ours:
            continue
        found = sum(ours.values())
        count = f"at least {found}" if state.depth > sample else str(found)
        names = ", ".join(sorted(ours))
        if queue in QUEUES:
            fix = f"start a worker that consumes it (celery -A worker worker -Q {','.join(QUEUES)})"
        else:
            fix = (
                f"the caller must send them with queue='{QUEUES[0]}' "
                f"(send_task(name, kwargs=..., queue='{QUEUES[0]}')); until then nothing runs them"
            )
        out.append(
            f"{count} message(s) of {names} wait in queue '{queue}', which no live worker "
            f"consumes: {fix}."
        )
    return out


def stats(src: Sources, now: float | None = None) -> dict[str, Any]:
    """Everything ``GET /v1/stats`` answers."""
    now = time.time() if now is None else now
    prefix = src.settings.key_prefix
    by_state = src.jobs.counts()
    states = queues(src.r, src.queues, now)
    held = unacked(src.r, now)
    workers = src.workers.get() if src.workers is not None else None
    queue_view = {}
    for name, state in states.items():
        entry: dict[str, Any] = {"depth": state.depth, "oldest_age_seconds": state.oldest_age}
        if state.oldest_age is None:
            entry["oldest_age_unknown"] = (
                "the oldest message carries no sent_at header (sent by a client other than ours)"
            )
        if workers is not None:
            entry["consumers"] = sorted(w for w, qs in workers.items() if name in qs)
        queue_view[name] = entry
    return {
        "generated_at": round(now, 3),
        "jobs": {"by_state": by_state, "in_flight": in_flight(by_state)},
        "queues": queue_view,
        "unacked": {
            "total": held.total,
            "countdown": held.countdown,
            "exact": held.scanned >= held.total,
        },
        "workers": workers,
        "rate_limiter": src.limiter.state(),
        "akool_last_hour": akool_last_hour(src.r, prefix, now),
        "warnings": [] if workers is None else warnings(src.r, states, workers),
    }
