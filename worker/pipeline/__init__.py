"""The job's steps as plain functions over :class:`~worker.services.Services`: ``steps``
(accept, submit, poll, fetch, finish), ``schedule`` (when a step runs again) and ``deliver``
(notifications). Tasks call these and map :class:`Later` onto a Celery retry."""

from worker.pipeline.deliver import SendTask, deliver
from worker.pipeline.manual import CancelOutcome, cancel, retry
from worker.pipeline.schedule import Later
from worker.pipeline.steps import (
    Stale,
    accept,
    fetch,
    finish,
    poll,
    result_summary,
    submit,
    timed_out,
)

__all__ = [
    "CancelOutcome",
    "Later",
    "SendTask",
    "Stale",
    "accept",
    "cancel",
    "deliver",
    "fetch",
    "finish",
    "poll",
    "result_summary",
    "retry",
    "submit",
    "timed_out",
]
