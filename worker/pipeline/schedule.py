"""When a step runs again: the shared rate limit, the poll schedule (learned durations or plain
backoff), the wait after an error (backoff, or longer when Akool says ``Retry-After``) and after
a step ran out of time; and the two signals a step gives its task instead of going on
(:class:`Later`, :class:`Stale`)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from worker.akool.errors import AkoolError
from worker.akool.validation import count_words
from worker.backoff import backoff
from worker.fleet import counters, estimator
from worker.jobs import ErrorCode, Job, JobState
from worker.services import Services


@dataclass(frozen=True)
class Later:
    """Not done yet: run this step again in ``countdown`` seconds (a control-flow signal)."""

    countdown: float
    reason: str
    #: Set when the wait may be parked (a poll waiting for Akool, tasks/chains.park): the job
    #: as the step read it.
    parkable: Job | None = None


class Stale(RuntimeError):
    """A step found its job in a state it cannot act on: the message belongs to an earlier
    attempt of a retried job (or a chain that a cancel overtook). The task drops the rest of
    its chain; the job's current attempt has its own."""


# The longest wait between two tries of a refused result: the store is back within a minute.
STORAGE_RETRY_CAP = 60.0


def longest_countdown(svc: Services) -> float:
    """The longest a step may wait as a countdown: below the visibility timeout less a task's
    time limit and kombu's restore sweep (about 120 s), or a waiting message is redelivered."""
    s = svc.settings
    return max(s.poll_max_delay, s.visibility_timeout - s.task_time_limit - 120)


def error_delay(svc: Services, errors: int, exc: AkoolError | None = None) -> float:
    """The wait before try ``errors + 1`` after a failure: the backoff, or the server's
    ``Retry-After`` when that is longer (capped by :func:`longest_countdown`)."""
    delay = backoff(errors - 1, base=1.0, cap=svc.settings.poll_max_delay)
    if exc is not None and exc.retry_after is not None:
        delay = max(delay, min(exc.retry_after, longest_countdown(svc)))
    return delay


def _spread(wait: float) -> float:
    # Callers that found the bucket empty must not all come back at the same instant.
    return wait + random.uniform(0.0, max(0.05, wait))


def wait_for_token(svc: Services, job_id: str) -> Later | None:
    """None when this job may call Akool now; else when to come back.

    A job that must wait reserves its slot in the shared bucket (up to ``POLL_MAX_DELAY``
    ahead) and remembers it, so it comes back then and does not ask the bucket again. Its due
    time in the active index moves with it, so the sweeper never mistakes waiting for lost.
    A job that owns a token passes the send-time check last: a busy worker may run a
    reservation late, and the call must still keep its distance. All of it is one round trip
    (``RateLimiter.acquire``).
    """
    wait, outcome = svc.limiter.acquire(job_id, max_wait=svc.settings.poll_max_delay)
    if outcome == "go":
        return None
    if outcome == "retry":
        wait = _spread(wait)
    svc.jobs.set_due(job_id, time.time() + wait)
    counters.ratelimit_wait(wait)
    return Later(wait, "rate limit")


def _words(job: Job) -> int:
    return count_words(str(job.request.get("input_text", "")))


def first_poll_delay(svc: Services, job: Job) -> float:
    """Near the expected completion once there is history (worker/fleet/estimator.py), else
    soon. The first countdown may exceed POLL_MAX_DELAY but stays under the visibility timeout
    less a task's time limit and kombu's restore sweep, like every countdown."""
    s = svc.settings
    model = svc.estimator.model()
    if model is None:
        return s.poll_initial_delay
    longest = min(s.poll_deadline, s.visibility_timeout - s.task_time_limit - 120)
    return estimator.first_delay(model, _words(job), floor=0.5, cap=max(s.poll_max_delay, longest))


def next_poll_delay(svc: Services, job: Job, now: float) -> float:
    s = svc.settings
    model = svc.estimator.model()
    if model is not None and job.submitted_at is not None:
        elapsed = now - job.submitted_at
        return estimator.next_delay(model, _words(job), elapsed, floor=0.5, cap=s.poll_max_delay)
    return backoff(
        job.polls,
        base=s.poll_initial_delay,
        cap=s.poll_max_delay,
        factor=1.5,
        floor=0.5,
        jitter=0.2,
    )


def learn(svc: Services, job: Job, detected_at: float) -> None:
    """Teach the fleet's duration model how long this job took at Akool."""
    if job.submitted_at is None:
        return
    previous = job.updated_at if job.polls > 0 else None
    seconds = estimator.observed_duration(job.submitted_at, previous, detected_at)
    svc.estimator.observe(_words(job), seconds)


def timed_out(svc: Services, job_id: str, retries: int) -> float | None:
    """A step ran past Celery's soft time limit (Redis or Akool stalled, a slow disk). Every step
    is idempotent against the job record, so it runs again after a backoff, counted against the
    job's transient error budget; beyond the budget the job fails with ``time_limit``. An entry
    task that timed out before its record existed counts its own retries instead. Returns the
    countdown, or None to give up."""
    s = svc.settings
    job = svc.jobs.find(job_id)
    if job is None:
        return error_delay(svc, retries + 1) if retries < s.transient_error_budget else None
    if job.state is JobState.STORING:
        # A slow store: it has its own window (STORAGE_RETRY_WINDOW), checked by the step.
        return backoff(job.storage_attempts, base=1.0, cap=STORAGE_RETRY_CAP)
    errors = svc.jobs.count_transient_error(job_id)
    if errors <= s.transient_error_budget:
        return error_delay(svc, errors)
    svc.jobs.fail(
        job_id,
        ErrorCode.TIME_LIMIT,
        f"a step ran past TASK_TIME_LIMIT ({s.task_time_limit} s) {errors} times",
    )
    return None
