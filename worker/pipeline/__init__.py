"""The job's steps as plain functions over :class:`~worker.services.Services`: ``steps``
(accept, submit, poll, fetch, finish), ``schedule`` (when a step runs again) and ``deliver``
(notifications). Tasks call these and map :class:`Later` onto a Celery retry."""

from worker.pipeline.deliver import SendTask, deliver
from worker.pipeline.schedule import Later
from worker.pipeline.steps import (
    accept,
    fetch,
    finish,
    poll,
    result_summary,
    submit,
    timed_out,
)

__all__ = [
    "Later",
    "SendTask",
    "accept",
    "deliver",
    "fetch",
    "finish",
    "poll",
    "result_summary",
    "submit",
    "timed_out",
]
