"""Cancel and retry for the web API, the command line and the task ``audio.cancel``: the plain
functions of :mod:`worker.pipeline.manual`, then whatever the job needs next enqueued. Each
caller passes its process's services (the web app's, or :func:`~worker.services.services`);
neither needs Akool's credentials."""

from __future__ import annotations

from typing import Any

from celery import Task

from tasks.base import OPTIONS
from tasks.chains import continuation
from worker import pipeline
from worker.celery import app
from worker.jobs import Job, JobState
from worker.services import Services, services


def cancel_job(
    svc: Services, job_id: str, expected_attempt: int | None = None
) -> pipeline.CancelOutcome:
    """Cancel a job; a job cancelled at once is finished now (published, notified with
    ``state: "cancelled"``, its entry task's result resolved). Raises JobNotFound or
    WrongState (StaleAttempt when the job is no longer at ``expected_attempt``)."""
    outcome = pipeline.cancel(svc, job_id, expected_attempt)
    if outcome.changed and outcome.job.state is JobState.CANCELLED:
        continuation(outcome.job, 0.0).apply_async()
    return outcome


def retry_job(svc: Services, job_id: str, expected_attempt: int | None = None) -> Job:
    """Run a failed or cancelled job again as attempt N+1 (submitted anew). Raises JobNotFound
    or WrongState (StaleAttempt when the job is no longer at ``expected_attempt``)."""
    job = pipeline.retry(svc, job_id, expected_attempt)
    continuation(job, 0.0).apply_async()
    return job


@app.task(name="audio.cancel", **OPTIONS)
def cancel(self: Task, job_id: str) -> dict[str, Any]:
    """audio.cancel(job_id) -> {job_id, state, message}; a job that has ended is an error."""
    outcome = cancel_job(services(), job_id)
    return {"job_id": job_id, "state": outcome.job.state.value, "message": outcome.message}
