"""When a step runs again: the shared rate limit, the poll schedule (learned durations or plain
backoff) and the wait after an error (backoff, or longer when Akool says ``Retry-After``)."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from worker.akool.errors import AkoolError
from worker.akool.validation import count_words
from worker.backoff import backoff
from worker.fleet import counters, estimator
from worker.jobs import Job
from worker.services import Services


@dataclass(frozen=True)
class Later:
    """Not done yet: run this step again in ``countdown`` seconds (a control-flow signal)."""

    countdown: float
    reason: str
    #: Set when the wait may be parked (a poll waiting for Akool, tasks/chains.park): the job
    #: as the step read it.
    parkable: Job | None = None


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
