"""The public tasks ``audio.create`` and ``audio.clone`` and the steps they chain into.

Each task decodes its arguments, calls one plain function of :mod:`worker.pipeline`, and maps
its answer onto Celery: ``None`` goes on, :class:`~worker.pipeline.Later` becomes
``self.retry(countdown=...)`` (the message goes back to Redis; no slot is held).
"""

from __future__ import annotations

import time
from typing import Any, NoReturn

import redis
from celery import Task, chain
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError

from config.celery import QUEUE_NOTIFY, QUEUE_POLL
from worker import pipeline
from worker.app import app
from worker.jobs import JobState
from worker.services import services


class DurableTask(Task):
    """A task whose retry never drops its message, and that runs again after a soft time limit.

    Celery's ``retry`` publishes a new message and, if that publish fails (Redis restarting, a
    cut connection), rejects the current one *without* requeue: the step, and with it the rest
    of the chain, is gone (the reduced reliability test lost a polling job that way). Here the
    current message is requeued instead; if even that cannot reach Redis, it stays unacked and
    comes back after the visibility timeout.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Past the soft time limit Celery would record a failure and ack: the rest of the chain
        # would be gone until the beat sweep finds the job (the Redis stall scenario in
        # tests/chaos showed it). The step runs again instead, within the job's error budget.
        try:
            return super().__call__(*args, **kwargs)
        except SoftTimeLimitExceeded:
            job_id = str(args[0] if args else kwargs.get("job_id") or self.request.id)
            countdown = pipeline.timed_out(services(), job_id, self.request.retries)
            if countdown is None:
                raise
            raise self.retry(countdown=countdown, max_retries=None) from None

    def retry(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().retry(*args, **kwargs)
        except Reject as rejected:
            if rejected.requeue:
                raise
            raise Reject(rejected.reason, requeue=True) from None


# Infrastructure hiccups (Redis restarting, a broker reconnect) are retried by Celery itself;
# everything about Akool is decided by the pipeline. Never a blanket Exception.
_INFRA = (redis.ConnectionError, redis.TimeoutError, OperationalError)
_COMMON: dict[str, Any] = {
    "base": DurableTask,
    "bind": True,
    "acks_late": True,
    "max_retries": None,
    "autoretry_for": _INFRA,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
}


def _again(task: Task, later: pipeline.Later) -> NoReturn:
    raise task.retry(countdown=later.countdown, max_retries=None)


def _steps(job_id: str) -> Any:
    """The rest of a submitted job: poll -> download -> finish, minus what is already done
    (Akool may answer the create with status 3, or 4, at once)."""
    svc = services()
    job = svc.jobs.get(job_id)
    if job.state.is_final:
        return finish.si(job_id)
    if job.state is JobState.DOWNLOADING:
        return chain(fetch.si(job_id), finish.si(job_id))
    due = 0.0
    score = svc.jobs.r.zscore(svc.jobs.active_key, job_id)
    if score is not None and job.akool_status not in (3, 4):
        due = max(0.0, float(score) - time.time())
    return chain(
        poll.si(job_id).set(countdown=due, queue=QUEUE_POLL), fetch.si(job_id), finish.si(job_id)
    )


def _entry(task: Task, kind: str, kwargs: dict[str, Any]) -> Any:
    svc = services()
    job_id, owner = pipeline.accept(svc, kind, kwargs, task.request.id)
    if not owner:
        # The same job_id was enqueued before: attach to that job, never submit twice.
        return task.replace(wait.si(job_id))
    later = pipeline.submit(svc, job_id)
    if later is not None:
        _again(task, later)
    return task.replace(_steps(job_id))


@app.task(name="audio.create", **_COMMON)
def create(self: Task, **kwargs: Any) -> Any:
    """audio.create(input_text, voice_id, rate="100%", job_id=None, notify_url=None,
    notify_task=None, notify_queue="celery") -> the final job summary."""
    return _entry(self, "create", kwargs)


@app.task(name="audio.clone", **_COMMON)
def clone(self: Task, **kwargs: Any) -> Any:
    """audio.clone(input_text, voice_url | voice_id, rate="100%", ...same options)."""
    return _entry(self, "clone", kwargs)


@app.task(name="audio.poll", **_COMMON)
def poll(self: Task, job_id: str) -> str:
    later = pipeline.poll(services(), job_id)
    if later is not None:
        _again(self, later)
    return job_id


@app.task(name="audio.download", **_COMMON)
def fetch(self: Task, job_id: str) -> str:
    later = pipeline.fetch(services(), job_id)
    if later is not None:
        _again(self, later)
    return job_id


@app.task(name="audio.finish", **_COMMON)
def finish(self: Task, job_id: str) -> dict[str, Any]:
    summary, owed = pipeline.finish(services(), job_id)
    if owed:
        deliver.apply_async((job_id,), queue=QUEUE_NOTIFY)
    return summary


def _send_task(name: str, args: list[Any], queue: str) -> None:
    app.send_task(name, args=args, queue=queue)


@app.task(name="audio.deliver", **_COMMON)
def deliver(self: Task, job_id: str) -> None:
    later = pipeline.deliver(services(), job_id, self.request.retries, _send_task)
    if later is not None:
        _again(self, later)


@app.task(name="audio.wait", **_COMMON)
def wait(self: Task, job_id: str) -> dict[str, Any]:
    """Resolve to the summary of a job that another entry task owns."""
    svc = services()
    job = svc.jobs.get(job_id)
    grace = svc.settings.poll_deadline + 2 * svc.settings.task_time_limit
    if job.state.is_final or time.time() > job.created_at + grace:
        return job.summary()
    _again(self, pipeline.Later(min(5.0, 0.5 * 2 ** min(self.request.retries, 4)), "waiting"))
