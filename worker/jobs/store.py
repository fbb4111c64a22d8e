"""Durable job records in Redis: the source of truth for every job.

One hash per job (``{prefix}:job:{job_id}``), an index of active jobs (a ZSET scored by the time
the next action is due, which the sweeper scans), and a map from Akool's id to our job id (for
the webhook receiver). Every multi-field change is one Lua script (``worker/lua/job_*.lua``), so
concurrent workers never see or write half a transition. Nothing outside this package touches
the Redis client of a ``JobStore``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from enum import IntEnum
from typing import Any, cast

import redis

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.jobs.listing import Listing, Page
from worker.jobs.record import (
    Job,
    JobConflict,
    JobNotFound,
    JobState,
    WrongState,
    request_fingerprint,
)
from worker.lua import job_script, source

_FINAL = tuple(s.value for s in JobState if s.is_final)
#: The newest events a job's timeline keeps (also EVENTS_MAX in worker/lua/_job.lua).
EVENTS_MAX = 200


def event_json(kind: str, fields: dict[str, Any]) -> str:
    """One timeline event as stored: ``{"t": when, "type": kind, **fields}``; ``when`` is
    ``fields["t"]`` if given (an event that happened before the write that records it), else
    now. Times have 0.1 ms, as the scripts' events do (Lua's JSON keeps 14 digits)."""
    when = round(float(fields.get("t", time.time())), 4)
    return json.dumps({**fields, "t": when, "type": kind}, separators=(",", ":"))


class Parked(IntEnum):
    """What :meth:`JobStore.park` did (worker/lua/job_park.lua's answer)."""

    MOVED_ON = 0  #: the job no longer waits for Akool: nothing was parked
    PARKED = 1
    NO_MESSAGE = 2  #: no message is kept for this attempt yet: park again with one


class JobStore:
    """Reads and atomically updates job records."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self._r = r
        self.s = settings
        script = r.register_script
        self._create = script(job_script("job_create"))
        self._begin_submit = script(job_script("job_begin_submit"))
        self._submitted = script(job_script("job_submitted"))
        self._fail = script(job_script("job_fail"))
        self._succeed = script(job_script("job_succeed"))
        self._storing = script(job_script("job_storing"))
        self._polled = script(job_script("job_polled"))
        self._release = script(job_script("job_release_submit"))
        self._cancel = script(job_script("job_cancel"))
        self._retry = script(job_script("job_retry"))
        self._park = script(job_script("job_park"))
        self._dispatch = script(source("dispatch_due"))
        self._unlock = script(source("delete_if_equals"))
        self.listing = Listing(r, settings.key("jobs") + ":")

    # keys
    def job_key(self, job_id: str) -> str:
        return self.s.key("job", job_id)

    @property
    def active_key(self) -> str:
        return self.s.key("active")

    def akool_key(self, akool_id: str) -> str:
        return self.s.key("akool", akool_id)

    @property
    def parked_key(self) -> str:
        return self.s.key("parked")

    @property
    def parked_messages_key(self) -> str:
        return self.s.key("parked-msg")

    def events_key(self, job_id: str) -> str:
        return self.s.key("events", job_id)

    def _keys(self, job_id: str, *more: str) -> list[str]:
        """The four keys every job script takes (worker/lua/_job.lua), then ``more``."""
        return [
            self.job_key(job_id),
            self.active_key,
            self.events_key(job_id),
            self.listing.prefix,
            *more,
        ]

    @property
    def _retention(self) -> int:
        return max(1, int(self.s.job_retention_days * 86400))

    # reads
    def get(self, job_id: str) -> Job:
        h = cast(dict[str, str], self._r.hgetall(self.job_key(job_id)))
        if not h:
            raise JobNotFound(job_id)
        return Job.from_hash(h)

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    def job_for_akool_id(self, akool_id: str) -> str | None:
        value = self._r.get(self.akool_key(akool_id))
        return str(value) if value else None

    def overdue(self, older_than: float, limit: int = 500) -> list[str]:
        """Active job ids whose next action was due before ``older_than`` (for the sweeper)."""
        ids = self._r.zrangebyscore(self.active_key, "-inf", older_than, 0, limit)
        return [str(i) for i in cast(list[str], ids)]

    def due(self, job_id: str) -> float | None:
        """When the job's next action is due, or None when it is not in the active index."""
        score = self._r.zscore(self.active_key, job_id)
        return None if score is None else float(score)

    def states(self, job_ids: list[str]) -> list[str | None]:
        """The state of each job (None: no record), in one round trip."""
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.job_key(job_id), "state")
        return [None if s is None else str(s) for s in pipe.execute()]

    # writes
    def create(
        self, job_id: str, kind: str, request: dict[str, Any], task_id: str
    ) -> tuple[str, str]:
        """Record a new job; returns (outcome, owner_task_id), outcome 'created' or 'exists'.

        Raises JobConflict when ``job_id`` exists with a different request.
        """
        now = time.time()
        outcome, owner = self._create(
            keys=self._keys(job_id),
            args=[
                job_id,
                kind,
                json.dumps(request, sort_keys=True),
                request_fingerprint(kind, request),
                now,
                task_id,
                now + self.s.poll_deadline,
            ],
        )
        if outcome == "conflict":
            raise JobConflict(
                f"job_id {job_id!r} already exists with a different request; "
                "use a new job_id for a new request"
            )
        return str(outcome), str(owner)

    def begin_submit(self, job_id: str, lease_seconds: float) -> str:
        """'go' (this caller may POST), 'submitted', 'final' (also when a cancel was asked:
        the job is cancelled now), 'busy' or 'missing'."""
        return str(
            self._begin_submit(
                keys=self._keys(job_id),
                args=[job_id, time.time(), lease_seconds, self._retention],
            )
        )

    def release_submit(self, job_id: str, code: str, *, ambiguous: bool) -> None:
        """End this worker's submit attempt without an Akool id (``code``: why).

        ``ambiguous`` keeps the in-flight mark: Akool may have created the job (a read timeout,
        a dropped or garbled answer), so the next attempt is counted in ``ambiguous_submits``.
        """
        self._release(
            keys=self._keys(job_id),
            args=[job_id, time.time(), int(ambiguous), code, self._retention],
        )

    def record_submitted(
        self,
        job_id: str,
        akool_id: str,
        status: AudioStatus,
        url: str | None,
        next_due: float,
        credits: float | None = None,
    ) -> bool:
        """True when the job is now submitted; False when it ended meanwhile (or was
        cancelled: the Akool id is kept on the record either way). ``credits`` (v4's
        ``deduction_credit``) is added to the record in every case: Akool charged them."""
        return bool(
            self._submitted(
                keys=self._keys(job_id, self.akool_key(akool_id)),
                args=[
                    job_id,
                    akool_id,
                    int(status),
                    url or "",
                    time.time(),
                    next_due,
                    self._retention,
                    self._retention,
                    "" if credits is None else repr(float(credits)),
                ],
            )
        )

    def record_poll(
        self,
        job_id: str,
        akool_status: AudioStatus | None,
        url: str | None,
        next_due: float,
        *,
        error: bool = False,
        counted: bool = True,
        lag: float = 0.0,
        source: str = "poll",
    ) -> JobState | None:
        """Record one poll (or transient error, or a ``source='webhook'`` callback); status 3
        moves the job to downloading. Returns the state after (None: no record)."""
        state = self._polled(
            keys=self._keys(job_id),
            args=[
                job_id,
                time.time(),
                "" if akool_status is None else int(akool_status),
                url or "",
                next_due,
                int(counted and not error),
                int(error),
                round(lag, 3),
                source,
                self._retention,
            ],
        )
        return None if state == "missing" else JobState(state)

    def note(self, job_id: str, kind: str, **fields: Any) -> None:
        """Append one event to the job's timeline (for writes that are not a transition)."""
        with self._r.pipeline(transaction=False) as pipe:
            self._event(pipe, job_id, kind, fields)
            pipe.execute()

    def _event(self, pipe: Any, job_id: str, kind: str, fields: dict[str, Any]) -> None:
        key = self.events_key(job_id)
        pipe.rpush(key, event_json(kind, fields))
        pipe.ltrim(key, -EVENTS_MAX, -1)

    def count_transient_error(
        self, job_id: str, event: tuple[str, dict[str, Any]] | None = None
    ) -> int:
        """Count one transient error of a step; ``event`` (kind, fields) goes on the timeline
        in the same round trip."""
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.job_key(job_id), "transient_errors", 1)
            if event is not None:
                self._event(pipe, job_id, *event)
            return int(pipe.execute()[0])

    def set_due(self, job_id: str, due: float) -> None:
        """Move an active job's due time (never re-adds a job that left the index)."""
        self._r.zadd(self.active_key, {job_id: due}, xx=True)

    def unindex(self, job_id: str) -> None:
        self._r.zrem(self.active_key, job_id)

    def count_sweep(self, job_id: str, action: str) -> int:
        """Count one restart by the sweeper (and put it on the timeline)."""
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.job_key(job_id), "sweeps", 1)
            self._event(pipe, job_id, "swept", {"action": action})
            return int(pipe.execute()[0])

    def fail(self, job_id: str, code: str, message: str) -> bool:
        """True when the job is now failed (a job being cancelled ends cancelled instead)."""
        return bool(
            self._fail(
                keys=self._keys(job_id),
                args=[job_id, time.time(), code, message[:2000], self._retention],
            )
        )

    def succeed(
        self,
        job_id: str,
        location: str,
        file: str | None,
        sha256: str,
        size: int,
        fetched: dict[str, Any] | None = None,
    ) -> str:
        """End the job with its stored result (``file`` None for object storage): 'succeeded';
        'ended' when it was final already; 'cancelled' when its cancel was asked meanwhile (the
        caller then removes the stored result). ``fetched`` is the download's event."""
        got = self._succeed(
            keys=self._keys(job_id),
            args=[
                job_id,
                time.time(),
                location,
                file or "",
                sha256,
                size,
                self._retention,
                event_json("downloaded", fetched) if fetched else "",
            ],
        )
        return {1: "succeeded", 2: "cancelled"}.get(int(got), "ended")

    def wait_for_storage(
        self,
        job_id: str,
        error: str,
        next_due: float,
        *,
        staged: str,
        sha256: str,
        size: int,
        fetched: dict[str, Any] | None = None,
    ) -> tuple[float, int] | None:
        """Record that the store refused this job's result, fetched as ``staged``:
        ``(since, attempts)``, or None when the job is not waiting for its result (it ended
        meanwhile)."""
        got = self._storing(
            keys=self._keys(job_id),
            args=[
                job_id,
                time.time(),
                error[:500],
                next_due,
                staged,
                sha256,
                size,
                event_json("downloaded", fetched) if fetched else "",
            ],
        )
        if not got:
            return None
        since, attempts = cast(list[Any], got)
        return float(since), int(attempts)

    def cancel(self, job_id: str, *, force: bool = False) -> tuple[str, JobState | None]:
        """Ask a job to stop: (outcome, state after). Outcomes: 'cancelled' (ended now),
        'cancelling' (a step in flight ends it at its next check), 'asked' (asked before),
        'final' (it had ended: nothing changed), 'missing'. ``force`` ends a job that is
        'cancelling' (the sweeper, when no step moved it)."""
        outcome, state = self._cancel(
            keys=self._keys(job_id), args=[job_id, time.time(), self._retention, int(force)]
        )
        return str(outcome), JobState(state) if state else None

    def retry(self, job_id: str) -> Job:
        """Run a failed or cancelled job again as attempt N+1 (state accepted, due now).
        Raises JobNotFound, or WrongState for a job in any other state."""
        outcome, detail = self._retry(
            keys=self._keys(job_id), args=[job_id, time.time(), time.time() + self.s.poll_deadline]
        )
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome == "wrong":
            raise WrongState(
                f"job {job_id} is {detail}: only a failed or cancelled job can be retried"
            )
        return self.get(job_id)

    def park(self, job_id: str, due: float, queue: str = "", message: str = "") -> Parked:
        """Keep the job's next poll until ``due``: ``message`` (kombu's payload for the list
        ``queue``) or, without one, the message kept from the job's last park (one per
        attempt, worker/lua/job_park.lua)."""
        keys = self._keys(job_id, self.parked_key, self.parked_messages_key)
        return Parked(int(self._park(keys=keys, args=[job_id, due, queue, message])))

    def parked_due(self, job_id: str) -> float | None:
        """When a parked poll of this job is due; None when none is parked."""
        score = self._r.zscore(self.parked_key, job_id)
        return None if score is None else float(score)

    def unpark(self, job_id: str) -> None:
        with self._r.pipeline(transaction=False) as pipe:
            pipe.zrem(self.parked_key, job_id)
            pipe.hdel(self.parked_messages_key, job_id)
            pipe.execute()

    def dispatch_due(
        self, limit: int, rate: float, horizon: float, poll_queue: str, penalty_key: str
    ) -> tuple[int, float | None]:
        """Push the parked polls that are due onto their queue, oldest first, at most
        ``limit`` and no more than ``rate`` x ``horizon`` minus what waits in ``poll_queue``
        (worker/lua/dispatch_due.lua). Returns (moved, seconds until the next is due or None)."""
        moved, wait = self._dispatch(
            keys=[
                self.parked_key,
                self.parked_messages_key,
                penalty_key,
                poll_queue,
                self.job_key(""),
            ],
            args=[time.time(), limit, rate, horizon],
        )
        return int(moved), None if float(wait) < 0 else float(wait)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's timeline, oldest first (the newest EVENTS_MAX events)."""
        raw = cast(list[str], self._r.lrange(self.events_key(job_id), 0, -1))
        return [json.loads(e) for e in raw]

    def page(
        self,
        state: str | None = None,
        prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """One page of jobs: newest first, or with ``prefix`` the job ids that start with it
        in id order; ``state`` filters. See :mod:`worker.jobs.listing`."""
        return self.listing.page(self._hashes, state, prefix, limit, cursor)

    def counts(self) -> dict[str, int]:
        """How many records are in each state (from the listing indexes)."""
        return self.listing.counts()

    def _hashes(self, job_ids: list[str]) -> list[Job | None]:
        pipe = self._r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.job_key(job_id))
        return [Job.from_hash(h) if h else None for h in pipe.execute()]

    def claim_finish(self, job_id: str) -> bool:
        """True for exactly one caller per job: the one that publishes and notifies.

        A final job stays in the active index until this claim, so a job whose finish step
        was lost is found and finished by the sweeper.
        """
        with self._r.pipeline() as pipe:
            pipe.hsetnx(self.job_key(job_id), "finished_at", time.time())
            pipe.zrem(self.active_key, job_id)
            first, _ = pipe.execute()
        return bool(first)

    def publish(self, summary: dict[str, Any]) -> int:
        """Publish a final summary on ``EVENTS_CHANNEL``; returns the number of subscribers."""
        message = json.dumps(summary, separators=(",", ":"))
        return int(self._r.publish(self.s.events_channel, message))

    def first_callback(self, akool_id: str, status: AudioStatus, job_id: str, ttl: int) -> bool:
        """True the first time Akool calls back with ``status`` for ``akool_id``."""
        key = self.s.key("webhook", "seen", f"{akool_id}:{int(status)}")
        return bool(self._r.set(key, job_id, nx=True, ex=ttl))

    def forget_callback(self, akool_id: str, status: AudioStatus) -> None:
        """Let the next callback for ``(akool_id, status)`` count as the first again."""
        self._r.delete(self.s.key("webhook", "seen", f"{akool_id}:{int(status)}"))

    def lock_notify(self, job_id: str, ttl: float) -> str | None:
        """A short lease on delivering this job's notifications; None if someone holds it."""
        token = uuid.uuid4().hex
        key = self.s.key("notify-lock", job_id)
        return token if self._r.set(key, token, nx=True, px=int(ttl * 1000)) else None

    def unlock_notify(self, job_id: str, token: str) -> None:
        self._unlock(keys=[self.s.key("notify-lock", job_id)], args=[token])

    def set_fields(
        self,
        job_id: str,
        event: tuple[str, dict[str, Any]] | None = None,
        **values: str | int | float,
    ) -> None:
        """Set plain fields (notification progress) and ``updated_at``; ``event`` (kind,
        fields) goes on the timeline in the same round trip."""
        mapping: dict[str, Any] = dict(values, updated_at=time.time())
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hset(self.job_key(job_id), mapping=cast(Any, mapping))
            if event is not None:
                self._event(pipe, job_id, *event)
            pipe.execute()

    # retention
    def purge_records(self, older_than: float) -> Iterator[str]:
        """Delete final records completed before ``older_than`` that carry no TTL (final records
        normally get an EXPIRE when they end; this catches records restored without it); yields
        each deleted job id."""
        for key in self._r.scan_iter(match=self.job_key("*"), count=500):
            if self._r.ttl(key) != -1:  # has a TTL (or vanished): Redis will expire it
                continue
            fields = ["state", "completed_at"]
            state, completed = cast(list[str | None], self._r.hmget(key, fields))
            if state in _FINAL and completed and float(completed) < older_than:
                job_id = str(key).rsplit(":", 1)[1]
                self._r.delete(key, self.events_key(job_id))
                yield job_id

    def prune_listing(self, older_than: float) -> int:
        """Drop listing entries of records created before ``older_than`` that have expired;
        returns how many."""

        def exists(job_ids: list[str]) -> list[bool]:
            pipe = self._r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(self.job_key(job_id))
            return [bool(n) for n in pipe.execute()]

        return self.listing.prune(older_than, exists)

    def prune_index(self, chunk: int = 500) -> tuple[list[str], set[str]]:
        """Drop ids of vanished or finished records from the active index: (dropped, live).

        A final job that no finisher has claimed yet stays: the sweeper still has to finish it.
        """
        dropped: list[str] = []
        live: set[str] = set()
        ids = [str(i) for i in cast(list[str], self._r.zrange(self.active_key, 0, -1))]
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            with self._r.pipeline(transaction=False) as pipe:
                for job_id in part:
                    pipe.hmget(self.job_key(job_id), ["state", "finished_at"])
                rows = pipe.execute()
            for job_id, (state, finished) in zip(part, rows, strict=True):
                if state is None or (state in _FINAL and finished):
                    self._r.zrem(self.active_key, job_id)
                    dropped.append(job_id)
                else:
                    live.add(job_id)
        return dropped, live
