"""A job's timeline: a capped Redis list of JSON events (``{prefix}:events:{job_id}``), oldest
first. The job scripts append theirs in the same call as the transition (``event`` in
worker/lua/_job.lua); the rest are appended here."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from worker.jobs.events import EventKind
from worker.jobs.keys import JobKeys

#: The newest events a job's timeline keeps (also EVENTS_MAX in worker/lua/_job.lua).
EVENTS_MAX = 200


def event_json(kind: EventKind, fields: dict[str, Any]) -> str:
    """One timeline event as stored: ``{"t": when, "type": kind, **fields}``; ``when`` is
    ``fields["t"]`` if given (an event that happened before the write that records it), else
    now. Times have 0.1 ms, as the scripts' events do (Lua's JSON keeps 14 digits)."""
    when = round(float(fields.get("t", time.time())), 4)
    return json.dumps({**fields, "t": when, "type": kind}, separators=(",", ":"))


class Timeline:
    def __init__(self, r: redis.Redis, keys: JobKeys) -> None:
        self._r = r
        self._keys = keys

    def events_key(self, job_id: str) -> str:
        return self._keys.events(job_id)

    def append(self, pipe: Any, job_id: str, kind: EventKind, fields: dict[str, Any]) -> None:
        """Queue one event on ``pipe``, so it is written in the caller's round trip."""
        key = self.events_key(job_id)
        pipe.rpush(key, event_json(kind, fields))
        pipe.ltrim(key, -EVENTS_MAX, -1)

    def note(self, job_id: str, kind: EventKind, **fields: Any) -> None:
        """Append one event to the job's timeline (for writes that are not a transition)."""
        with self._r.pipeline(transaction=False) as pipe:
            self.append(pipe, job_id, kind, fields)
            pipe.execute()

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's timeline, oldest first (the newest EVENTS_MAX events)."""
        raw = cast(list[str], self._r.lrange(self.events_key(job_id), 0, -1))
        return [json.loads(e) for e in raw]
