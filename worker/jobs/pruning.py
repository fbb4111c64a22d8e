"""Retention of the job store: what the hourly purge (worker/maintenance/retention.py) drops.
Final records normally expire by themselves (the scripts set an EXPIRE when a job ends); this
catches what did not, and the index entries of records that are gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import redis

from worker.jobs.keys import JobKeys
from worker.jobs.listing import Listing
from worker.jobs.record import JobState

_FINAL = tuple(s.value for s in JobState if s.is_final)


class Pruning:
    def __init__(self, r: redis.Redis, keys: JobKeys, listing: Listing) -> None:
        self._r = r
        self._keys = keys
        self._listing = listing

    def purge_records(self, older_than: float) -> Iterator[str]:
        """Delete final records completed before ``older_than`` that carry no TTL (final records
        normally get an EXPIRE when they end; this catches records restored without it); yields
        each deleted job id."""
        for key in self._r.scan_iter(match=self._keys.job("*"), count=500):
            if self._r.ttl(key) != -1:  # has a TTL (or vanished): Redis will expire it
                continue
            fields = ["state", "completed_at"]
            state, completed = cast(list[str | None], self._r.hmget(key, fields))
            if state in _FINAL and completed and float(completed) < older_than:
                job_id = str(key).rsplit(":", 1)[1]
                self._r.delete(key, self._keys.events(job_id))
                yield job_id

    def prune_listing(self, older_than: float) -> int:
        """Drop listing entries of records created before ``older_than`` that have expired;
        returns how many."""

        def exists(job_ids: list[str]) -> list[bool]:
            pipe = self._r.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.exists(self._keys.job(job_id))
            return [bool(n) for n in pipe.execute()]

        return self._listing.prune(older_than, exists)

    def prune_index(self, chunk: int = 500) -> tuple[list[str], set[str]]:
        """Drop ids of vanished or finished records from the active index: (dropped, live).

        A final job that no finisher has claimed yet stays: the sweeper still has to finish it.
        """
        dropped: list[str] = []
        live: set[str] = set()
        active = self._keys.active
        ids = [str(i) for i in cast(list[str], self._r.zrange(active, 0, -1))]
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            with self._r.pipeline(transaction=False) as pipe:
                for job_id in part:
                    pipe.hmget(self._keys.job(job_id), ["state", "finished_at"])
                rows = pipe.execute()
            for job_id, (state, finished) in zip(part, rows, strict=True):
                if state is None or (state in _FINAL and finished):
                    self._r.zrem(active, job_id)
                    dropped.append(job_id)
                else:
                    live.add(job_id)
        return dropped, live
