"""The transitions of a job record: every multi-field change is one Lua script
(``worker/lua/job_*.lua``, with the shared functions of ``_job.lua``), so concurrent workers
never see or write half a transition. Each takes the four keys of ``JobKeys.script`` and
appends its own events to the job's timeline in the same call."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.jobs.events import EventKind
from worker.jobs.keys import JobKeys
from worker.jobs.record import (
    Job,
    JobConflict,
    JobNotFound,
    JobState,
    StaleAttempt,
    WrongState,
    request_fingerprint,
)
from worker.jobs.timeline import event_json
from worker.lua import job_script


class Transitions:
    """The job scripts, on one Redis client (the base of :class:`worker.jobs.store.JobStore`)."""

    def __init__(self, r: redis.Redis, settings: Settings, keys: JobKeys) -> None:
        self._r = r
        self.s = settings
        self.keys = keys
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

    @property
    def _retention(self) -> int:
        return max(1, int(self.s.job_retention_days * 86400))

    def get(self, job_id: str) -> Job:
        """The job's record; raises JobNotFound."""
        h = cast(dict[str, str], self._r.hgetall(self.keys.job(job_id)))
        if not h:
            raise JobNotFound(job_id)
        return Job.from_hash(h)

    def create(
        self, job_id: str, kind: str, request: dict[str, Any], task_id: str
    ) -> tuple[str, str]:
        """Record a new job; returns (outcome, owner_task_id), outcome 'created' or 'exists'.

        Raises JobConflict when ``job_id`` exists with a different request.
        """
        now = time.time()
        outcome, owner = self._create(
            keys=self.keys.script(job_id),
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
                keys=self.keys.script(job_id),
                args=[job_id, time.time(), lease_seconds, self._retention],
            )
        )

    def release_submit(self, job_id: str, code: str, *, ambiguous: bool) -> None:
        """End this worker's submit attempt without an Akool id (``code``: why).

        ``ambiguous`` keeps the in-flight mark: Akool may have created the job (a read timeout,
        a dropped or garbled answer), so the next attempt is counted in ``ambiguous_submits``.
        """
        self._release(
            keys=self.keys.script(job_id),
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
                keys=self.keys.script(job_id, self.keys.akool(akool_id)),
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
            keys=self.keys.script(job_id),
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

    def fail(self, job_id: str, code: str, message: str) -> bool:
        """True when the job is now failed (a job being cancelled ends cancelled instead)."""
        return bool(
            self._fail(
                keys=self.keys.script(job_id),
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
            keys=self.keys.script(job_id),
            args=[
                job_id,
                time.time(),
                location,
                file or "",
                sha256,
                size,
                self._retention,
                event_json(EventKind.DOWNLOADED, fetched) if fetched else "",
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
            keys=self.keys.script(job_id),
            args=[
                job_id,
                time.time(),
                error[:500],
                next_due,
                staged,
                sha256,
                size,
                event_json(EventKind.DOWNLOADED, fetched) if fetched else "",
            ],
        )
        if not got:
            return None
        since, attempts = cast(list[Any], got)
        return float(since), int(attempts)

    def cancel(
        self, job_id: str, *, force: bool = False, expected_attempt: int | None = None
    ) -> tuple[str, JobState | None]:
        """Ask a job to stop: (outcome, state after). Outcomes: 'cancelled' (ended now),
        'cancelling' (a step in flight ends it at its next check), 'asked' (asked before),
        'final' (it had ended: nothing changed), 'missing'. ``force`` ends a job that is
        'cancelling' (the sweeper, when no step moved it). Raises StaleAttempt when the job
        is not at ``expected_attempt`` (checked in the same script: nothing changes)."""
        expected = "" if expected_attempt is None else str(expected_attempt)
        outcome, state = self._cancel(
            keys=self.keys.script(job_id),
            args=[job_id, time.time(), self._retention, int(force), expected],
        )
        if outcome == "stale":
            raise StaleAttempt(job_id, int(expected), int(state))
        return str(outcome), JobState(state) if state else None

    def retry(self, job_id: str, *, expected_attempt: int | None = None) -> Job:
        """Run a failed or cancelled job again as attempt N+1 (state accepted, due now).
        Raises JobNotFound, StaleAttempt when the job is not at ``expected_attempt``, or
        WrongState for a job in any other state."""
        expected = "" if expected_attempt is None else str(expected_attempt)
        outcome, detail = self._retry(
            keys=self.keys.script(job_id),
            args=[job_id, time.time(), time.time() + self.s.poll_deadline, expected],
        )
        if outcome == "missing":
            raise JobNotFound(job_id)
        if outcome == "stale":
            raise StaleAttempt(job_id, int(expected), int(detail))
        if outcome == "wrong":
            raise WrongState(
                f"job {job_id} is {detail}: only a failed or cancelled job can be retried"
            )
        return self.get(job_id)
