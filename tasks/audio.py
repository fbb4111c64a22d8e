"""The public tasks ``audio.create`` and ``audio.clone`` and the steps they chain into.

Each task decodes its arguments, calls one plain function of :mod:`worker.pipeline`, and maps
its answer onto Celery: ``None`` goes on, :class:`~worker.pipeline.Later` becomes
``self.retry(countdown=...)`` (the message goes back to Redis; no slot is held).
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from config.celeryconfig import QUEUE_NOTIFY
from tasks import chains
from tasks.base import OPTIONS, again, end_here
from tasks.chains import rest_of
from worker import pipeline
from worker.celery import app
from worker.jobs import JobState
from worker.services import Services, services


def _rest(task: Task, svc: Services, job_id: str) -> Any:
    """Go on with the rest of the job: a first poll that waits longer than
    ``POLL_PARK_THRESHOLD`` is parked in Redis like every later one (the dispatcher sends the
    rest of the chain, whose last step carries this task's id, so the caller's result still
    resolves to the summary); a shorter wait is a countdown."""
    job = svc.jobs.get(job_id)
    now = time.time()
    due = svc.jobs.due(job_id) or now
    parkable = job.state is JobState.SUBMITTED and job.owner_task_id == task.request.id
    if (
        parkable
        and due - now > svc.settings.poll_park_threshold
        and chains.park(svc.jobs, job, due)
    ):
        end_here(task)  # no result is stored: the parked chain's last step stores it
        return None
    return task.replace(rest_of(job, due - now))


def _entry(task: Task, kind: str, kwargs: dict[str, Any]) -> Any:
    svc = services()
    job_id, owner = pipeline.accept(svc, kind, kwargs, task.request.id)
    if not owner:
        # The same job_id was enqueued before: attach to that job, never submit twice.
        return task.replace(wait.si(job_id))
    later = pipeline.submit(svc, job_id)
    if later is not None:
        if chains.parks(svc, later):  # a v4 clone stage waits for its voice in Redis
            end_here(task)  # the parked resume's chain stores the summary under this id
            return None
        again(task, later)
    return _rest(task, svc, job_id)


@app.task(name="audio.create", track_started=True, **OPTIONS)
def create(self: Task, **kwargs: Any) -> Any:
    """audio.create(input_text, voice_id, rate="100%", job_id=None, notify_url=None,
    notify_task=None, notify_queue="celery", metadata=None) -> the final job summary."""
    return _entry(self, "create", kwargs)


@app.task(name="audio.clone", track_started=True, **OPTIONS)
def clone(self: Task, **kwargs: Any) -> Any:
    """audio.clone(input_text, voice_url | voice_id, rate="100%", ...same options)."""
    return _entry(self, "clone", kwargs)


# No result (nobody reads a poll's; its chain's last step stores the job's), but a poll that
# fails outright (a malformed message) still records its FAILURE.
@app.task(name=chains.POLL, ignore_result=True, store_errors_even_if_ignored=True, **OPTIONS)
def poll(self: Task, job_id: str) -> str:
    svc = services()
    later = pipeline.poll(svc, job_id)
    if later is not None:
        if chains.parks(svc, later):
            # A long wait is parked in Redis, not held here as a countdown: the dispatcher
            # sends the rest of the chain when it is due. This chain ends here.
            end_here(self)
            return job_id
        again(self, later)
    return job_id


@app.task(name=chains.DOWNLOAD, **OPTIONS)
def download(self: Task, job_id: str) -> dict[str, Any]:
    """Fetch and store the result, then finish the job in the same task (one task less per
    job): the final summary is this task's result."""
    svc = services()
    later = pipeline.fetch(svc, job_id)
    if later is not None:
        again(self, later)
    return _finish(svc, job_id)


@app.task(name=chains.FINISH, **OPTIONS)
def finish(self: Task, job_id: str) -> dict[str, Any]:
    return _finish(services(), job_id)


def _finish(svc: Services, job_id: str) -> dict[str, Any]:
    summary, owed = pipeline.finish(svc, job_id)
    if owed:
        deliver.apply_async((job_id,), queue=QUEUE_NOTIFY)
    return summary


def _send_task(name: str, args: list[Any], queue: str) -> None:
    app.send_task(name, args=args, queue=queue)


@app.task(name="audio.deliver", **OPTIONS)
def deliver(self: Task, job_id: str) -> None:
    later = pipeline.deliver(services(), job_id, self.request.retries, _send_task)
    if later is not None:
        again(self, later)


@app.task(name="audio.wait", **OPTIONS)
def wait(self: Task, job_id: str) -> dict[str, Any]:
    """Resolve to the summary of a job that another entry task owns."""
    svc = services()
    job = svc.jobs.get(job_id)
    grace = svc.settings.poll_deadline + 2 * svc.settings.task_time_limit
    if job.state.is_final or time.time() > job.created_at + grace:
        return pipeline.result_summary(svc.store, svc.settings.download_url_ttl, job)
    again(self, pipeline.Later(min(5.0, 0.5 * 2 ** min(self.request.retries, 4)), "waiting"))
