"""The job's steps as plain functions over :class:`~worker.services.Services`, free of Celery:
``submitting`` (accept, submit), ``polling`` (poll), ``fetching`` (fetch and store),
``finishing`` (finish), ``schedule`` (when a step runs again) and ``deliver`` (notifications).
Each step returns ``None`` to go on or :class:`Later` to be called again after a countdown;
tasks map that onto a Celery retry. Every step is idempotent against the job record, so a
redelivered message does no harm."""

from worker.pipeline.deliver import SendTask, deliver
from worker.pipeline.fetching import fetch
from worker.pipeline.finishing import finish, result_summary
from worker.pipeline.manual import CancelOutcome, cancel, retry
from worker.pipeline.polling import poll
from worker.pipeline.schedule import Later, Stale, timed_out
from worker.pipeline.submitting import accept, submit

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
