"""The last step: ``finish`` (the final summary, published once) and what notifications are
still owed; ``result_summary`` is the summary every reader shows (tasks, web, CLI)."""

from __future__ import annotations

from typing import Any

from worker.fleet import counters
from worker.jobs import Job, JobState, NotifyState
from worker.jobs.request import from_record
from worker.pipeline.schedule import Stale
from worker.services import Services
from worker.storage import ResultStore, StorageError

URL_DONE = (NotifyState.DELIVERED, NotifyState.UNDELIVERABLE)


def notifications_owed(job: Job) -> bool:
    """Whether ``notify_task`` or ``notify_url`` still has to be told about this job."""
    request = from_record(job.request)
    task_owed = bool(request.notify_task) and job.notify_task_state is not NotifyState.SENT
    url_owed = bool(request.notify_url) and job.notify_state not in URL_DONE
    return task_owed or url_owed


def result_summary(store: ResultStore, ttl: int, job: Job) -> dict[str, Any]:
    """The job's summary with a fresh ``download_url`` (valid ``ttl`` s) when its result is in
    object storage."""
    url = None
    if job.state is JobState.SUCCEEDED and job.location:
        try:
            url = store.download_url(job.location, ttl)
        except StorageError:
            url = None  # the summary stands without a link; `akool-audio url` makes one later
    return job.summary(url)


def finish(svc: Services, job_id: str) -> tuple[dict[str, Any], bool]:
    """The final summary, and whether notifications are still owed to the caller.

    The summary is published on the events channel once (the first finisher claims it). The
    notifications themselves go through :func:`~worker.pipeline.deliver.deliver`, which is
    idempotent, so every finisher may enqueue it: a finisher that crashes after its claim still
    leaves one behind.
    """
    job = svc.jobs.get(job_id)
    if not job.state.is_final:
        raise Stale(f"job {job_id} is not final ({job.state})")
    summary = result_summary(svc.store, svc.settings.download_url_ttl, job)
    if svc.jobs.claim_finish(job_id):
        svc.jobs.notices.publish(summary)
        counters.job_finished(job)
    return summary, notifications_owed(job)
