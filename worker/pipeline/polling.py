"""The ``poll`` step: ask Akool how the audio is doing, until it is done, failed or past the
job's deadline; each wait in between may be parked (tasks/chains.park)."""

from __future__ import annotations

import time
from typing import assert_never

from worker.akool import AudioStatus
from worker.akool import errors as akool_errors
from worker.akool.speech import APIS
from worker.jobs import ErrorCode, Job, JobState
from worker.pipeline.akoolcodes import error_code, failed_status
from worker.pipeline.schedule import (
    Later,
    Stale,
    error_delay,
    learn,
    next_poll_delay,
    wait_for_token,
)
from worker.services import Services


def poll(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state.is_final or job.state.is_fetching:
        # Done by another path (a callback, the poll of a duplicate chain, a cancel), which
        # continues the job itself: this chain's download and finish would only repeat it.
        raise Stale(f"job {job_id} is {job.state.value}; its poll chain is not needed")
    if job.state is JobState.CANCELLING:
        svc.jobs.cancel(job_id, force=True)
        return None
    if job.akool_id is None:
        raise Stale(f"job {job_id} is polled before it was submitted")
    now = time.time()
    if job.akool_status is AudioStatus.COMPLETED and job.audio_url:  # done at create
        svc.jobs.record_poll(
            job_id, AudioStatus.COMPLETED, job.audio_url, now, counted=False, source="create"
        )
        return None
    later = wait_for_token(svc, job_id)
    if later is not None:
        return later
    try:
        record = APIS[job.api].poll(svc.akool, job.akool_id)
    except akool_errors.AkoolError as exc:
        return _poll_failed(svc, job, exc)
    status = record.status
    match status:
        case AudioStatus.COMPLETED:
            if not record.url:
                missing = akool_errors.BadResponse("status 3 without a url", endpoint="detail")
                return _poll_failed(svc, job, missing)
            svc.jobs.record_poll(job_id, status, record.url, now, lag=now - (job.due_at or now))
            learn(svc, job, time.time())
            return None
        case AudioStatus.FAILED:
            svc.jobs.record_poll(job_id, status, None, now)
            svc.jobs.fail(job_id, ErrorCode.AKOOL_FAILED, failed_status(job.akool_id))
            return None
        case AudioStatus.QUEUEING | AudioStatus.PROCESSING:
            return _not_done(svc, job, status, now)
        case _:
            assert_never(status)


def _not_done(svc: Services, job: Job, status: AudioStatus, now: float) -> Later | None:
    if job.deadline_at is not None and now >= job.deadline_at:
        # The last look is taken at the deadline: a job that finished just before is kept.
        svc.jobs.record_poll(job.job_id, status, None, now)
        svc.jobs.fail(
            job.job_id,
            ErrorCode.DEADLINE,
            f"Akool did not finish the audio within the {svc.settings.poll_deadline:g} s "
            f"deadline (last status {int(status)}, {job.polls + 1} polls)",
        )
        return None
    delay = _before_deadline(job, next_poll_delay(svc, job, now), now)
    lag = now - (job.due_at or now)
    svc.jobs.record_poll(job.job_id, status, None, now + delay, lag=lag)
    return Later(delay, f"Akool status {int(status)}", parkable=job)


def _before_deadline(job: Job, delay: float, now: float) -> float:
    """A poll's wait, shortened so that the last look is taken at the deadline."""
    if job.deadline_at is None:
        return delay
    return max(0.5, min(delay, job.deadline_at - now))


def _poll_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    if not exc.retryable:
        svc.jobs.fail(job.job_id, error_code(exc), str(exc))
        return None
    errors = job.transient_errors + 1
    if errors > svc.settings.transient_error_budget:
        svc.jobs.fail(
            job.job_id,
            error_code(exc),
            f"gave up after {errors} transient errors while polling: {exc}",
        )
        return None
    now = time.time()
    delay = _before_deadline(job, error_delay(svc, errors, exc), now)
    svc.jobs.record_poll(job.job_id, None, None, now + delay, error=True)
    return Later(delay, f"poll failed ({error_code(exc)}), retrying", parkable=job)
