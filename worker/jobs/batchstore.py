"""Batches of jobs posted together (``POST /v1/batches``): one small hash per batch
(``{prefix}:batch:{id}``: created time, the batch's metadata) and the batch's index
(``{prefix}:jobs:batch:{id}``, a ZSET of its job ids scored by creation time), which is both
the list of its jobs and the index :mod:`worker.jobs.listing` pages through for
``GET /v1/jobs?batch=ID``. Both expire with the job retention, renewed as jobs are added."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from config.settings import Settings
from worker.jobs.keys import JobKeys
from worker.jobs.record import JobState

#: Items of one batch, at most, and the body of POST /v1/batches (the service's 64 KB
#: elsewhere): 1,000 job bodies of about 2 KB each.
MAX_JOBS, MAX_BODY = 1000, 2 * 1024 * 1024


class BatchConflict(ValueError):
    """Raised when a batch id is given again with other metadata."""


@dataclass(frozen=True)
class Batch:
    batch_id: str
    created_at: float
    metadata: dict[str, str]
    job_ids: list[str]  # oldest first


class Batches:
    def __init__(self, r: redis.Redis, settings: Settings, keys: JobKeys) -> None:
        self._r = r
        self.s = settings
        self.keys = keys

    @property
    def _retention(self) -> int:
        return max(1, int(self.s.job_retention_days * 86400))

    def key(self, batch_id: str) -> str:
        return self.s.key("batch", batch_id)

    def index_key(self, batch_id: str) -> str:
        return f"{self.keys.listing}batch:{batch_id}"  # = Listing.batch_key

    def open(self, batch_id: str, metadata: dict[str, str] | None) -> bool:
        """Record the batch (True), or find it recorded with the same metadata (False).
        Raises BatchConflict when it exists with other metadata."""
        doc = json.dumps(metadata or {}, sort_keys=True)
        key = self.key(batch_id)
        pipe = self._r.pipeline(transaction=True)
        pipe.hsetnx(key, "metadata", doc)
        pipe.hsetnx(key, "created_at", repr(time.time()))
        pipe.hget(key, "metadata")
        pipe.expire(key, self._retention)
        created, _, stored, _ = pipe.execute()
        if stored != doc:
            raise BatchConflict(
                f"batch_id {batch_id!r} already exists with other metadata; "
                "use a new batch_id for a new batch"
            )
        return bool(created)

    def add(self, batch_id: str, job_ids: list[str]) -> None:
        """Index ``job_ids`` (recorded now) in the batch, in the order given."""
        if not job_ids:
            return
        now = time.time()
        # Scores a microsecond apart keep the items' order among jobs created at once.
        members = {job_id: now + i * 1e-6 for i, job_id in enumerate(job_ids)}
        pipe = self._r.pipeline(transaction=False)
        pipe.zadd(self.index_key(batch_id), members, nx=True)
        pipe.expire(self.index_key(batch_id), self._retention)
        pipe.expire(self.key(batch_id), self._retention)
        pipe.execute()

    def find(self, batch_id: str) -> Batch | None:
        pipe = self._r.pipeline(transaction=False)
        pipe.hgetall(self.key(batch_id))
        pipe.zrange(self.index_key(batch_id), 0, MAX_JOBS * 2)
        h, ids = cast(tuple[dict[str, str], list[str]], pipe.execute())
        if not h:
            return None
        return Batch(
            batch_id,
            float(h.get("created_at", 0)),
            json.loads(h.get("metadata") or "{}"),
            [str(i) for i in ids],
        )

    def counts(self, batch: Batch) -> dict[str, Any]:
        """The batch's jobs by state (every state, 0 when none; ``expired`` for records gone
        after their retention) and whether every one has ended."""
        pipe = self._r.pipeline(transaction=False)
        for job_id in batch.job_ids:
            pipe.hget(self.keys.job(job_id), "state")
        states = cast(list[str | None], pipe.execute()) if batch.job_ids else []
        counts = {s.value: 0 for s in JobState}
        expired = 0
        for state in states:
            if state is None:
                expired += 1
            else:
                counts[state] = counts.get(state, 0) + 1
        final = sum(counts[s.value] for s in JobState if s.is_final) + expired
        return {"counts": counts, "expired": expired, "done": final == len(batch.job_ids)}
