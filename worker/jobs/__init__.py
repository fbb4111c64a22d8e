"""Job records: the typed record (``record``), its store in Redis (``store``) and the request
a caller sends (``request``)."""

from worker.jobs.record import (
    ErrorCode,
    Job,
    JobConflict,
    JobNotFound,
    JobState,
    NotifyState,
    WrongState,
)
from worker.jobs.store import JobStore

__all__ = [
    "ErrorCode",
    "Job",
    "JobConflict",
    "JobNotFound",
    "JobState",
    "JobStore",
    "NotifyState",
    "WrongState",
]
