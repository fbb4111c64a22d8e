"""Cancel and retry: what an operator (the web API, ``akool-audio cancel|retry``, the task
``audio.cancel``) may do to a job, as plain functions. The caller enqueues what the job needs
next (``tasks/control.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from worker.jobs import Job, JobNotFound, JobState, WrongState
from worker.services import Services

#: Akool v3 has no cancel call: said in every answer about a job Akool already has.
NO_AKOOL_CANCEL = (
    "Akool's v3 API has no cancel call, so Akool job {akool_id} may still finish and be "
    "charged; its result is never downloaded or stored."
)


@dataclass(frozen=True)
class CancelOutcome:
    job: Job  # the record after the cancel
    changed: bool  # False when the cancel had been asked before
    message: str  # what happened, for the caller


def cancel(svc: Services, job_id: str, expected_attempt: int | None = None) -> CancelOutcome:
    """Ask a job to stop. Raises JobNotFound, StaleAttempt when the job is no longer at
    ``expected_attempt`` (None: whichever), or WrongState for a job that has ended."""
    outcome, state = svc.jobs.cancel(job_id, expected_attempt=expected_attempt)
    if outcome == "missing":
        raise JobNotFound(job_id)
    if outcome == "final":
        raise WrongState(f"job {job_id} has already ended ({state}); nothing to cancel")
    job = svc.jobs.get(job_id)
    if job.state is JobState.CANCELLED:
        message = "cancelled."
    elif job.akool_id is None:
        message = (
            "cancelling: a submit to Akool is in flight; the job ends cancelled as soon as it "
            "returns. If Akool accepted it, Akool may still finish and charge for it; its "
            "result is never downloaded or stored."
        )
    else:
        message = "cancelling: the download in flight stops and nothing is stored."
    if outcome == "asked":
        message = "cancel was asked before; " + message
    if job.akool_id is not None:
        message += " " + NO_AKOOL_CANCEL.format(akool_id=job.akool_id)
    return CancelOutcome(job, outcome != "asked", message)


def retry(svc: Services, job_id: str, expected_attempt: int | None = None) -> Job:
    """Run a failed or cancelled job again under its id as attempt N+1; the record keeps
    every attempt. Raises JobNotFound, StaleAttempt when the job is no longer at
    ``expected_attempt`` (None: whichever), or WrongState for a job in another state."""
    return svc.jobs.retry(job_id, expected_attempt=expected_attempt)
