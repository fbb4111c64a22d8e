"""Job records: the typed record (``record``), its store in Redis (``store``), the kinds of its
timeline's events (``events``) and the request a caller sends (``request``)."""

from worker.jobs.events import EventKind
from worker.jobs.record import (
    ErrorCode,
    Job,
    JobConflict,
    JobNotFound,
    JobState,
    NotifyState,
    StaleAttempt,
    WrongState,
)
from worker.jobs.store import JobStore

__all__ = [
    "ErrorCode",
    "EventKind",
    "Job",
    "JobConflict",
    "JobNotFound",
    "JobState",
    "JobStore",
    "NotifyState",
    "StaleAttempt",
    "WrongState",
]
