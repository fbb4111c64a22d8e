"""The indexes that list jobs without scanning Redis: every job by creation time, one index per
state, and the job ids in byte order for prefix search (``{prefix}:jobs:*``).

The job scripts keep them current in the same call as each transition (``worker/lua/_job.lua``);
entries of records that expired are skipped when read and dropped by :meth:`Listing.prune`
(the hourly purge). A page costs two round trips whatever the number of records: one range
read on an index and one pipelined read of the page's records.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker.jobs.record import Job, JobState

MAX_LIMIT = 200
#: With a prefix and a state, at most this many ids are read for one page (the rest come with
#: the cursor), so a rare state under a common prefix cannot make one request scan everything.
PREFIX_SCAN = 1000
# Entries of the same creation time as the cursor's that may repeat across pages: skipped.
_TIE_SLACK = 64

Hashes = Callable[[list[str]], list[Job | None]]


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next_cursor: str | None


_NOT_OURS = "cursor is not one this service gave out"
_OTHER_FILTER = (
    "cursor belongs to another filter: page on with the same state, q and batch as the page "
    "that gave it, or start again without a cursor"
)


def _filter(state: str | None, prefix: str | None, batch: str | None = None) -> list[str | None]:
    # A batch joins the filter only when given, so cursors made before batches still work.
    return [state, prefix or None] + ([batch] if batch else [])


def _encode(
    doc: dict[str, Any], state: str | None, prefix: str | None, batch: str | None = None
) -> str:
    # The filter rides along, so a cursor given with another filter is refused, not followed.
    raw = json.dumps({**doc, "f": _filter(state, prefix, batch)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(
    cursor: str, state: str | None, prefix: str | None, batch: str | None = None
) -> dict[str, Any]:
    """The cursor's fields, checked (anyone can send one); raises ValueError naming it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        doc = json.loads(raw, parse_constant=_no_constant)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError(_NOT_OURS) from None
    if not isinstance(doc, dict):
        raise ValueError(_NOT_OURS)
    member = doc.get("m")
    if not isinstance(member, str) or not 0 < len(member) <= 128:
        raise ValueError(_NOT_OURS)
    if doc.get("f") != _filter(state, prefix, batch):
        raise ValueError(_OTHER_FILTER)
    if not prefix:
        score = doc.get("s")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ValueError(_NOT_OURS)
        try:
            if not math.isfinite(float(score)):
                raise ValueError(_NOT_OURS)
        except OverflowError:  # an int of 400 digits
            raise ValueError(_NOT_OURS) from None
    return doc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class Listing:
    def __init__(self, r: redis.Redis, prefix: str) -> None:
        self._r = r
        self.prefix = prefix  # '<KEY_PREFIX>:jobs:'

    def state_key(self, state: str) -> str:
        return f"{self.prefix}state:{state}"

    @property
    def created_key(self) -> str:
        return f"{self.prefix}created"

    @property
    def ids_key(self) -> str:
        return f"{self.prefix}ids"

    def batch_key(self, batch_id: str) -> str:
        """The index of one batch's jobs (worker/jobs/batchstore.py writes it)."""
        return f"{self.prefix}batch:{batch_id}"

    def counts(self) -> dict[str, int]:
        pipe = self._r.pipeline(transaction=False)
        for state in JobState:
            pipe.zcard(self.state_key(state.value))
        return {s.value: int(n) for s, n in zip(JobState, pipe.execute(), strict=True)}

    def page(
        self,
        hashes: Hashes,
        state: str | None,
        prefix: str | None,
        limit: int,
        cursor: str | None,
        batch: str | None = None,
    ) -> Page:
        if state is not None and state not in {s.value for s in JobState}:
            raise ValueError(f"state must be one of {', '.join(s.value for s in JobState)}")
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
        if batch and prefix:
            raise ValueError("batch and q cannot be given together")
        after = _decode(cursor, state, prefix, batch) if cursor else None
        if prefix:
            jobs, nxt = self._by_prefix(hashes, prefix, state, limit, after)
        elif batch:
            jobs, nxt = self._in_batch(hashes, batch, state, limit, after)
        else:
            jobs, nxt = self._newest(hashes, state, limit, after)
        return Page(jobs, None if nxt is None else _encode(nxt, state, prefix, batch))

    def _in_batch(
        self,
        hashes: Hashes,
        batch: str,
        state: str | None,
        limit: int,
        after: dict[str, Any] | None,
    ) -> tuple[list[Job], dict[str, Any] | None]:
        """A batch's jobs, newest first; with a state, at most PREFIX_SCAN ids are read for
        one page (a whole batch) and filtered."""
        if not state:
            return self._newest(hashes, None, limit, after, self.batch_key(batch))
        top: float | str = "(" + repr(float(after["s"])) if after else "+inf"
        rows = cast(
            list[tuple[str, float]],
            self._r.zrevrangebyscore(
                self.batch_key(batch), top, "-inf", 0, PREFIX_SCAN, withscores=True
            ),
        )
        jobs: list[Job] = []
        last: tuple[str, float] | None = None
        for (member, score), job in zip(rows, hashes([m for m, _ in rows]), strict=True):
            if job is not None and job.state.value == state:
                jobs.append(job)
            last = (member, score)
            if len(jobs) == limit:
                break
        more = bool(rows) and (len(rows) == PREFIX_SCAN or last != rows[-1])
        return jobs, ({"s": last[1], "m": last[0]} if more and last else None)

    def _newest(
        self,
        hashes: Hashes,
        state: str | None,
        limit: int,
        after: dict[str, Any] | None,
        index: str | None = None,
    ) -> tuple[list[Job], dict[str, Any] | None]:
        key = index or (self.state_key(state) if state else self.created_key)
        top: float | str = "+inf"
        skip: tuple[float, str] | None = None
        if after is not None:
            top, skip = float(after["s"]), (float(after["s"]), after["m"])
        rows = cast(
            list[tuple[str, float]],
            self._r.zrevrangebyscore(key, top, "-inf", 0, limit + 1 + _TIE_SLACK, withscores=True),
        )
        if skip is not None:
            # Same score as the cursor: ZREVRANGEBYSCORE orders those by member, descending.
            rows = [(m, s) for m, s in rows if s < skip[0] or m < skip[1]]
        rows = rows[: limit + 1]
        more = len(rows) > limit
        rows = rows[:limit]
        jobs = [j for j in hashes([m for m, _ in rows]) if j is not None]
        return jobs, ({"s": rows[-1][1], "m": rows[-1][0]} if more and rows else None)

    def _by_prefix(
        self,
        hashes: Hashes,
        prefix: str,
        state: str | None,
        limit: int,
        after: dict[str, Any] | None,
    ) -> tuple[list[Job], dict[str, Any] | None]:
        start = f"({after['m']}" if after else f"[{prefix}"
        end = f"[{prefix}\xff"
        want = PREFIX_SCAN if state else limit + 1
        found = self._r.zrangebylex(self.ids_key, start, end, 0, want)
        ids = [str(i) for i in cast(list[str], found)]
        if not state:
            more = len(ids) > limit
            ids = ids[:limit]
            found_jobs = [j for j in hashes(ids) if j is not None]
            return found_jobs, ({"m": ids[-1]} if more and ids else None)
        jobs: list[Job] = []
        last = None
        for job_id, job in zip(ids, hashes(ids), strict=True):
            if job is not None and job.state.value == state:
                jobs.append(job)
            last = job_id
            if len(jobs) == limit:
                break
        more = bool(ids) and (len(ids) == want or last != ids[-1])
        return jobs, ({"m": last} if more and last else None)

    def prune(self, older_than: float, exists: Callable[[list[str]], list[bool]]) -> int:
        """Drop the index entries of records created before ``older_than`` that no longer
        exist (expired after their retention); returns how many were dropped."""
        dropped = 0
        low: float | str = "-inf"
        while True:
            rows = cast(
                list[tuple[str, float]],
                self._r.zrangebyscore(self.created_key, low, older_than, 0, 500, withscores=True),
            )
            if not rows:
                return dropped
            ids = [str(m) for m, _ in rows]
            gone = [i for i, alive in zip(ids, exists(ids), strict=True) if not alive]
            if gone:
                pipe = self._r.pipeline(transaction=False)
                for key in (self.created_key, self.ids_key, *map(self.state_key, JobState)):
                    pipe.zrem(key, *gone)
                pipe.execute()
                dropped += len(gone)
            if len(rows) < 500:
                return dropped
            low = rows[-1][1]  # inclusive: an entry of the same score is read again, harmless
            if all(s == low for _, s in rows):
                low = f"({low}"
