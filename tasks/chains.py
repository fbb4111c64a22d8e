"""The rest of a job as a Celery chain, built from its record.

Signatures are made by task name, so this module needs none of the task modules: the entry
tasks, the sweeper and the webhook receiver all continue a job the same way.
"""

from __future__ import annotations

from celery import chain
from celery.canvas import Signature

from config.celeryconfig import QUEUE_POLL
from worker.celery import app
from worker.jobs import Job, JobState

POLL = "audio.poll"
DOWNLOAD = "audio.download"
FINISH = "audio.finish"
RESUME = "maintenance.resume"


def _step(name: str, job_id: str) -> Signature:
    return app.signature(name, args=(job_id,), immutable=True)


def rest_of(job: Job, due_in: float, finish: Signature | None = None) -> Signature:
    """poll -> download -> finish, minus what the record says is done (Akool may answer the
    create with status 3, or 4, at once). The first poll waits ``due_in`` seconds."""
    final = finish if finish is not None else _step(FINISH, job.job_id)
    if job.state.is_final:
        return final
    if job.state.is_fetching:
        return chain(_step(DOWNLOAD, job.job_id), final)
    if job.akool_status is not None and job.akool_status.is_final:
        due_in = 0.0
    first = _step(POLL, job.job_id).set(countdown=max(0.0, due_in), queue=QUEUE_POLL)
    return chain(first, _step(DOWNLOAD, job.job_id), final)


def continuation(job: Job, due_in: float) -> Signature:
    """The rest of a job's chain from its recorded state; the last step takes the entry task's
    id, so the caller's AsyncResult resolves to the summary even when the first chain was lost.
    A job not yet submitted is resumed (submitted under its lease) first."""
    if job.state in (JobState.ACCEPTED, JobState.SUBMITTING):
        return _step(RESUME, job.job_id)
    final = _step(FINISH, job.job_id).set(task_id=job.owner_task_id or None)
    return rest_of(job, due_in, final)
