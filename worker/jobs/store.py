"""Durable job records in Redis: the source of truth for every job.

One hash per job (``{prefix}:job:{job_id}``), an index of active jobs (a ZSET scored by the time
the next action is due, which the sweeper scans), and a map from Akool's id to our job id (for
the webhook receiver). Every multi-field change is one Lua script (``worker/lua/job_*.lua``), so
concurrent workers never see or write half a transition. Nothing outside this package touches
the Redis client of a ``JobStore``.

``JobStore`` holds the records and their transitions; the other concerns of the store are its
attributes, on the same Redis client and keys (worker/jobs/keys.py): ``timeline`` (events),
``listing`` (the indexes behind GET /v1/jobs, read through :meth:`JobStore.page`), ``batches``
(jobs posted together), ``parking``
(parked polls and their dispatch), ``notices`` (the events channel, webhook dedupe, the notify
lock) and ``pruning`` (retention).
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from config.settings import Settings
from worker.jobs.batchstore import Batches
from worker.jobs.events import EventKind
from worker.jobs.keys import JobKeys
from worker.jobs.listing import Listing, Page
from worker.jobs.notices import Notices
from worker.jobs.parking import Parking
from worker.jobs.pruning import Pruning
from worker.jobs.record import Job, JobNotFound
from worker.jobs.timeline import Timeline
from worker.jobs.transitions import Transitions


class JobStore(Transitions):
    """Reads and atomically updates job records (the transitions: :class:`Transitions`)."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        keys = JobKeys(settings)
        super().__init__(r, settings, keys)
        self.timeline = Timeline(r, keys)
        self.listing = Listing(r, keys.listing)
        self.parking = Parking(r, keys)
        self.notices = Notices(r, keys, settings)
        self.pruning = Pruning(r, keys, self.listing)
        self.batches = Batches(r, settings, keys)

    # keys
    def job_key(self, job_id: str) -> str:
        return self.keys.job(job_id)

    @property
    def active_key(self) -> str:
        return self.keys.active

    def akool_key(self, akool_id: str) -> str:
        return self.keys.akool(akool_id)

    # reads
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

    # writes that are not transitions
    def count_transient_error(
        self, job_id: str, event: tuple[EventKind, dict[str, Any]] | None = None
    ) -> int:
        """Count one transient error of a step; ``event`` (kind, fields) goes on the timeline
        in the same round trip."""
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.job_key(job_id), "transient_errors", 1)
            if event is not None:
                self.timeline.append(pipe, job_id, *event)
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
            self.timeline.append(pipe, job_id, EventKind.SWEPT, {"action": action})
            return int(pipe.execute()[0])

    def page(
        self,
        state: str | None = None,
        prefix: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        batch: str | None = None,
    ) -> Page:
        """One page of jobs: newest first, or with ``prefix`` the job ids that start with it
        in id order; ``state`` and ``batch`` filter. See :mod:`worker.jobs.listing`."""
        return self.listing.page(self._hashes, state, prefix, limit, cursor, batch)

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

    def set_fields(
        self,
        job_id: str,
        event: tuple[EventKind, dict[str, Any]] | None = None,
        **values: str | int | float,
    ) -> None:
        """Set plain fields (notification progress) and ``updated_at``; ``event`` (kind,
        fields) goes on the timeline in the same round trip."""
        mapping: dict[str, Any] = dict(values, updated_at=time.time())
        with self._r.pipeline(transaction=False) as pipe:
            pipe.hset(self.job_key(job_id), mapping=cast(Any, mapping))
            if event is not None:
                self.timeline.append(pipe, job_id, *event)
            pipe.execute()
