"""Durable job records in Redis: the source of truth for every job.

One hash per job (``{prefix}:job:{job_id}``), an index of active jobs (a ZSET scored by the time
the next action is due, which the sweeper scans), and a map from Akool's id to our job id (for
the webhook receiver). Every multi-field change is one Lua script, so concurrent workers never
see or write half a transition.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis

from config.settings import Settings


class JobState(StrEnum):
    ACCEPTED = "accepted"  # recorded, not yet sent to Akool
    SUBMITTING = "submitting"  # a worker holds the submit lease
    SUBMITTED = "submitted"  # Akool has it; we poll
    DOWNLOADING = "downloading"  # Akool finished; the file is being fetched
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class JobConflict(ValueError):
    """Raised when a job id is reused with a different request."""


class JobNotFound(KeyError):
    """Raised when no record exists for a job id."""


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    request: dict[str, Any]
    state: JobState
    owner_task_id: str
    akool_id: str | None
    akool_status: int | None
    audio_url: str | None
    submit_attempts: int
    ambiguous_submits: int
    polls: int
    transient_errors: int
    created_at: float
    updated_at: float
    submitted_at: float | None
    completed_at: float | None
    deadline_at: float | None
    file: str | None
    sha256: str | None
    bytes: int | None
    error_code: str | None
    error_message: str | None
    notify_state: str | None
    notify_task_state: str | None
    due_at: float | None = None  # when the next poll is planned
    detected_at: float | None = None  # when a poll first saw status 3
    poll_lag_max: float | None = None  # worst lateness of a poll against its plan

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Job:
        def opt_f(k: str) -> float | None:
            return float(h[k]) if h.get(k) else None

        def opt_i(k: str) -> int | None:
            return int(h[k]) if h.get(k) else None

        return cls(
            job_id=h["job_id"],
            kind=h["kind"],
            request=json.loads(h["request"]),
            state=JobState(h["state"]),
            owner_task_id=h.get("owner_task_id", ""),
            akool_id=h.get("akool_id") or None,
            akool_status=opt_i("akool_status"),
            audio_url=h.get("audio_url") or None,
            submit_attempts=int(h.get("submit_attempts", 0)),
            ambiguous_submits=int(h.get("ambiguous_submits", 0)),
            polls=int(h.get("polls", 0)),
            transient_errors=int(h.get("transient_errors", 0)),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            submitted_at=opt_f("submitted_at"),
            completed_at=opt_f("completed_at"),
            deadline_at=opt_f("deadline_at"),
            file=h.get("file") or None,
            sha256=h.get("sha256") or None,
            bytes=opt_i("bytes"),
            error_code=h.get("error_code") or None,
            error_message=h.get("error_message") or None,
            notify_state=h.get("notify_state") or None,
            notify_task_state=h.get("notify_task_state") or None,
            due_at=opt_f("due_at"),
            detected_at=opt_f("detected_at"),
            poll_lag_max=opt_f("poll_lag_max"),
        )

    def summary(self) -> dict[str, Any]:
        """The final result contract (DESIGN.md): what callers and notifications receive."""
        error = None
        if self.state is JobState.FAILED:
            error = {"code": self.error_code, "message": self.error_message}
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "akool_id": self.akool_id,
            "audio_url": self.audio_url,
            "file": self.file,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "error": error,
        }


def new_job_id() -> str:
    return uuid.uuid4().hex


def request_fingerprint(kind: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# KEYS: job, active  ARGV: job_id, kind, request, fingerprint, now, task_id, deadline
_CREATE = """
local fp = redis.call('HGET', KEYS[1], 'fingerprint')
if fp then
  if fp ~= ARGV[4] then return {'conflict', ''} end
  return {'exists', redis.call('HGET', KEYS[1], 'owner_task_id') or ''}
end
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'kind', ARGV[2], 'request', ARGV[3],
  'fingerprint', ARGV[4], 'state', 'accepted', 'created_at', ARGV[5], 'updated_at', ARGV[5],
  'owner_task_id', ARGV[6], 'deadline_at', ARGV[7], 'submit_attempts', 0, 'polls', 0,
  'transient_errors', 0, 'ambiguous_submits', 0)
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return {'created', ARGV[6]}
"""

# KEYS: job  ARGV: now, lease_seconds
# Returns 'go' (caller may POST), 'submitted', 'final', 'busy', or 'missing'.
_BEGIN_SUBMIT = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' then return 'final' end
if redis.call('HGET', KEYS[1], 'akool_id') then return 'submitted' end
local lease = tonumber(redis.call('HGET', KEYS[1], 'submit_lease_until') or '0')
local now = tonumber(ARGV[1])
if lease > now then return 'busy' end
if redis.call('HGET', KEYS[1], 'submit_inflight') == '1' then
  -- an earlier POST started but its outcome was never recorded (crash or lost answer)
  redis.call('HINCRBY', KEYS[1], 'ambiguous_submits', 1)
end
redis.call('HSET', KEYS[1], 'state', 'submitting', 'submit_inflight', '1',
  'submit_lease_until', now + tonumber(ARGV[2]), 'updated_at', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'submit_attempts', 1)
return 'go'
"""

# KEYS: job, active, akool-map  ARGV: job_id, akool_id, status, url, now, next_due, map_ttl
_SUBMITTED = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 0 end
if st == 'succeeded' or st == 'failed' then
  -- the job was ended (e.g. at its deadline) while this POST was in flight: keep the paid
  -- Akool id for the audit trail, but never bring a final job back to life
  redis.call('HSET', KEYS[1], 'orphan_akool_id', ARGV[2])
  return 0
end
if redis.call('HGET', KEYS[1], 'akool_id') then
  if redis.call('HGET', KEYS[1], 'akool_id') ~= ARGV[2] then
    redis.call('HSET', KEYS[1], 'orphan_akool_id', ARGV[2])  -- a racing duplicate submission
  end
  return 0
end
redis.call('HSET', KEYS[1], 'akool_id', ARGV[2], 'akool_status', ARGV[3], 'audio_url', ARGV[4],
  'state', 'submitted', 'submit_inflight', '0', 'submit_lease_until', 0,
  'submitted_at', ARGV[5], 'updated_at', ARGV[5], 'due_at', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[1])
redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[7])
return 1
"""

# KEYS: job, active  ARGV: job_id, now, error_code, error_message, retention_seconds
_FAIL = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'succeeded' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error_code', ARGV[3], 'error_message', ARGV[4],
  'completed_at', ARGV[2], 'updated_at', ARGV[2], 'submit_inflight', '0')
-- stays indexed (due now) until a finisher claims it: the sweeper finishes it if none does
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS: job, active  ARGV: job_id, now, file, sha256, bytes, retention_seconds
_SUCCEED = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st or st == 'succeeded' or st == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'succeeded', 'file', ARGV[3], 'sha256', ARGV[4],
  'bytes', ARGV[5], 'completed_at', ARGV[2], 'updated_at', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return 1
"""

# KEYS: job, active  ARGV: job_id, now, akool_status, url, next_due, count_poll, count_error, lag
# Records one poll outcome; moves a completed job to 'downloading'. Returns the state after.
# 'lag' is how late this poll ran against its plan; the worst is kept (bench/ reads it).
_POLLED = """
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return 'missing' end
if st == 'succeeded' or st == 'failed' or st == 'downloading' then return st end
redis.call('HINCRBY', KEYS[1], 'polls', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[1], 'transient_errors', tonumber(ARGV[7]))
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2], 'due_at', ARGV[5])
local lag = tonumber(ARGV[8])
if lag > tonumber(redis.call('HGET', KEYS[1], 'poll_lag_max') or '-1e9') then
  redis.call('HSET', KEYS[1], 'poll_lag_max', ARGV[8])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'akool_status', ARGV[3]) end
if ARGV[3] == '3' then
  redis.call('HSET', KEYS[1], 'state', 'downloading', 'audio_url', ARGV[4], 'detected_at', ARGV[2],
    'poll_errors', redis.call('HGET', KEYS[1], 'transient_errors') or '0', 'transient_errors', 0)
  st = 'downloading'
end
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return st
"""


# KEYS: job  ARGV: now, ambiguous(0/1). Only a job still being submitted goes back to accepted.
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'submitting' then return 0 end
if redis.call('HGET', KEYS[1], 'akool_id') then return 0 end
redis.call('HSET', KEYS[1], 'state', 'accepted', 'submit_lease_until', 0, 'updated_at', ARGV[1])
if ARGV[2] == '0' then redis.call('HSET', KEYS[1], 'submit_inflight', '0') end
return 1
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class JobStore:
    """Reads and atomically updates job records."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.s = settings
        self._create = r.register_script(_CREATE)
        self._begin_submit = r.register_script(_BEGIN_SUBMIT)
        self._submitted = r.register_script(_SUBMITTED)
        self._fail = r.register_script(_FAIL)
        self._succeed = r.register_script(_SUCCEED)
        self._polled = r.register_script(_POLLED)
        self._unlock = r.register_script(_UNLOCK)
        self._release = r.register_script(_RELEASE)

    # keys
    def job_key(self, job_id: str) -> str:
        return self.s.key("job", job_id)

    @property
    def active_key(self) -> str:
        return self.s.key("active")

    def akool_key(self, akool_id: str) -> str:
        return self.s.key("akool", akool_id)

    @property
    def _retention(self) -> int:
        return max(1, int(self.s.job_retention_days * 86400))

    # reads
    def get(self, job_id: str) -> Job:
        h = cast(dict[str, str], self.r.hgetall(self.job_key(job_id)))
        if not h:
            raise JobNotFound(job_id)
        return Job.from_hash(h)

    def find(self, job_id: str) -> Job | None:
        try:
            return self.get(job_id)
        except JobNotFound:
            return None

    def job_for_akool_id(self, akool_id: str) -> str | None:
        value = self.r.get(self.akool_key(akool_id))
        return str(value) if value else None

    def overdue(self, older_than: float, limit: int = 500) -> list[str]:
        """Active job ids whose next action was due before ``older_than`` (for the sweeper)."""
        ids = self.r.zrangebyscore(self.active_key, "-inf", older_than, 0, limit)
        return [str(i) for i in cast(list[str], ids)]

    # writes
    def create(
        self, job_id: str, kind: str, request: dict[str, Any], task_id: str
    ) -> tuple[str, str]:
        """Record a new job; returns (outcome, owner_task_id), outcome 'created' or 'exists'.

        Raises JobConflict when ``job_id`` exists with a different request.
        """
        now = time.time()
        outcome, owner = self._create(
            keys=[self.job_key(job_id), self.active_key],
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
        return str(
            self._begin_submit(keys=[self.job_key(job_id)], args=[time.time(), lease_seconds])
        )

    def release_submit(self, job_id: str, *, ambiguous: bool) -> None:
        """End this worker's submit attempt without an Akool id.

        ``ambiguous`` keeps the in-flight mark: Akool may have created the job (a read timeout,
        a dropped or garbled answer), so the next attempt is counted in ``ambiguous_submits``.
        """
        self._release(keys=[self.job_key(job_id)], args=[time.time(), int(ambiguous)])

    def record_submitted(
        self, job_id: str, akool_id: str, status: int, url: str | None, next_due: float
    ) -> bool:
        return bool(
            self._submitted(
                keys=[self.job_key(job_id), self.active_key, self.akool_key(akool_id)],
                args=[job_id, akool_id, status, url or "", time.time(), next_due, self._retention],
            )
        )

    def record_poll(
        self,
        job_id: str,
        akool_status: int | None,
        url: str | None,
        next_due: float,
        *,
        error: bool = False,
        counted: bool = True,
        lag: float = 0.0,
    ) -> JobState | None:
        """Record one poll (or transient error); status 3 moves the job to downloading."""
        state = self._polled(
            keys=[self.job_key(job_id), self.active_key],
            args=[
                job_id,
                time.time(),
                "" if akool_status is None else akool_status,
                url or "",
                next_due,
                int(counted and not error),
                int(error),
                round(lag, 3),
            ],
        )
        return None if state == "missing" else JobState(state)

    def count_transient_error(self, job_id: str) -> int:
        return int(self.r.hincrby(self.job_key(job_id), "transient_errors", 1))

    def reset_transient_errors(self, job_id: str) -> None:
        self.r.hset(self.job_key(job_id), "transient_errors", 0)

    def set_due(self, job_id: str, due: float) -> None:
        self.r.zadd(self.active_key, {job_id: due}, xx=True)

    def fail(self, job_id: str, code: str, message: str) -> bool:
        return bool(
            self._fail(
                keys=[self.job_key(job_id), self.active_key],
                args=[job_id, time.time(), code, message[:2000], self._retention],
            )
        )

    def succeed(self, job_id: str, file: str, sha256: str, size: int) -> bool:
        return bool(
            self._succeed(
                keys=[self.job_key(job_id), self.active_key],
                args=[job_id, time.time(), file, sha256, size, self._retention],
            )
        )

    def claim_finish(self, job_id: str) -> bool:
        """True for exactly one caller per job: the one that publishes and notifies.

        A final job stays in the active index until this claim, so a job whose finish step
        was lost is found and finished by the sweeper.
        """
        with self.r.pipeline() as pipe:
            pipe.hsetnx(self.job_key(job_id), "finished_at", time.time())
            pipe.zrem(self.active_key, job_id)
            first, _ = pipe.execute()
        return bool(first)

    def lock_notify(self, job_id: str, ttl: float) -> str | None:
        """A short lease on delivering this job's notifications; None if someone holds it."""
        token = uuid.uuid4().hex
        key = self.s.key("notify-lock", job_id)
        return token if self.r.set(key, token, nx=True, px=int(ttl * 1000)) else None

    def unlock_notify(self, job_id: str, token: str) -> None:
        self._unlock(keys=[self.s.key("notify-lock", job_id)], args=[token])

    def set_fields(self, job_id: str, **values: str | int | float) -> None:
        mapping: dict[str, Any] = dict(values, updated_at=time.time())
        self.r.hset(self.job_key(job_id), mapping=cast(Any, mapping))
