"""The rest of a job as a Celery chain, built from its record: poll (until Akool is done), then
download, which also finishes the job (publishes, enqueues the notifications, returns the
summary); ``audio.finish`` alone ends a job that is final already.

Signatures are made by task name, so this module needs none of the task modules: the entry
tasks, the sweeper and the webhook receiver all continue a job the same way.
"""

from __future__ import annotations

import time

from celery import chain
from celery.canvas import Signature

from config.celeryconfig import QUEUE_POLL
from worker.broker.compat import capture_lpush, check_cjson_safe
from worker.celery import app
from worker.jobs import Job, JobState, JobStore
from worker.jobs.parking import Parked
from worker.pipeline import Later
from worker.services import Services

POLL = "audio.poll"
DOWNLOAD = "audio.download"
FINISH = "audio.finish"
RESUME = "maintenance.resume"


def _step(name: str, job_id: str) -> Signature:
    return app.signature(name, args=(job_id,), immutable=True)


def rest_of(job: Job, due_in: float, task_id: str | None = None) -> Signature:
    """poll -> download (which finishes the job), minus what the record says is done (Akool
    may answer the create with status 3, or 4, at once). The first poll waits ``due_in``
    seconds; the last step runs under ``task_id`` when given."""
    last = _step(FINISH if job.state.is_final else DOWNLOAD, job.job_id)
    if task_id:
        last = last.set(task_id=task_id)
    if job.state.is_final or job.state.is_fetching:
        return last
    if job.akool_status is not None and job.akool_status.is_final:
        due_in = 0.0
    first = _step(POLL, job.job_id).set(countdown=max(0.0, due_in), queue=QUEUE_POLL)
    return chain(first, last)


def continuation(job: Job, due_in: float) -> Signature:
    """The rest of a job's chain from its recorded state; the last step takes the entry task's
    id, so the caller's AsyncResult resolves to the summary even when the first chain was lost.
    A job not yet submitted is resumed (submitted under its lease) first."""
    if job.state in (JobState.ACCEPTED, JobState.SUBMITTING):
        return _step(RESUME, job.job_id)
    return rest_of(job, due_in, job.owner_task_id or None)


def park(jobs: JobStore, job: Job, due: float) -> bool:
    """Park the job's next step until ``due`` (worker/jobs/parking.py): its next poll while
    it is ``submitted``, or its resume while a v4 clone stage waits for the voice (the job is
    ``accepted``). Its continuation, built as the message kombu would send, waits in Redis
    instead of in a worker; it is the same for every wait in one state of an attempt, so it
    is built only when the job has none kept (about a fifth of a poll's CPU,
    bench/pollcost.py). False when the job no longer waits in that state (whoever moved it
    continues it)."""
    state = job.state
    parked = jobs.parking.park(job.job_id, due, state=state)
    if parked is Parked.NO_MESSAGE:
        queue, message = capture_lpush(continuation(job, 0.0).apply_async)
        check_cjson_safe(message)  # the dispatcher edits it with Redis's cjson
        parked = jobs.parking.park(job.job_id, due, queue, message, state=state)
    return parked is Parked.PARKED


def parks(svc: Services, later: Later) -> bool:
    """Whether a step's wait is parked rather than held as a countdown: a wait for Akool
    (``later.parkable``) longer than ``POLL_PARK_THRESHOLD``. When True the step's chain ends
    here: the parked message (or whoever moved the job meanwhile) continues the job."""
    job = later.parkable
    if job is None or later.countdown <= svc.settings.poll_park_threshold:
        return False
    if job.state not in (JobState.ACCEPTED, JobState.SUBMITTED):
        return False  # kept messages belong to one of these two states (job_park.lua)
    park(svc.jobs, job, time.time() + later.countdown)
    return True
