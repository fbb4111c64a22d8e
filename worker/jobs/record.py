"""What a job record holds: its state, its error and notification codes, and the typed view of
its Redis hash (``Job``), with the summary every caller receives."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from worker.akool.audiorequest import api_of
from worker.akool.models import AudioStatus
from worker.akool.speech import APIS


class JobState(StrEnum):
    """A job's state (README, "Job states and error semantics"). The job scripts in worker/lua/
    move jobs between them; tests/unit/test_states_events.py checks the scripts' states, the
    OpenAPI document, the CLI, the dashboard and the README against this list."""

    ACCEPTED = "accepted"  # recorded, not yet sent to Akool
    SUBMITTING = "submitting"  # a worker holds the submit lease
    SUBMITTED = "submitted"  # Akool has it; we poll
    DOWNLOADING = "downloading"  # Akool finished; the file is being fetched
    STORING = "storing"  # fetched, waiting for the result store (its error says why)
    CANCELLING = "cancelling"  # cancel asked while a step may be in flight; it stops at its check
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # final: nothing more is sent, downloaded or stored

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @property
    def is_unsuccessful(self) -> bool:
        """Final without a result: the job carries an error (``cancelled`` for a cancel), and
        only such a job can be retried (job_retry.lua checks the same states)."""
        return self in (JobState.FAILED, JobState.CANCELLED)

    @property
    def is_fetching(self) -> bool:
        """Akool has finished: what is left is to download and store the result."""
        return self in (JobState.DOWNLOADING, JobState.STORING)


class ErrorCode(StrEnum):
    """Our own codes for a failed job. An Akool API error keeps Akool's numeric code instead
    (``"1003"``, ``"1104"``, ...), so ``Job.error_code`` is one of these or such a number."""

    AKOOL_FAILED = "akool_failed"  # Akool reported status 4
    DEADLINE = "deadline"  # not done within POLL_DEADLINE, or never submitted before it
    TIME_LIMIT = "time_limit"  # a step ran past TASK_TIME_LIMIT more often than the budget
    DOWNLOAD_GONE = "download_gone"  # the result URL answered 403/404/410
    DOWNLOAD_TOO_LARGE = "download_toolarge"  # over DOWNLOAD_MAX_BYTES
    DOWNLOAD_REFUSED = "download_refused"  # the URL or a redirect points where we must not go
    DOWNLOAD_TRANSIENT = "download_transient"  # network errors until the budget ran out
    DOWNLOAD_ERROR = "download_error"  # any other answer than 200
    DOWNLOAD_STALLED = "download_stalled"  # restarted by the sweeper without progress
    STORAGE_FAILED = "storage_failed"  # the result store refused it for STORAGE_RETRY_WINDOW
    CANCELLED = "cancelled"  # the error code of a cancelled job
    # Akool could not be reached, or answered without an envelope, until the budget ran out.
    CONNECT_TIMEOUT = "ConnectTimeout"
    CONNECTION_FAILED = "ConnectionFailed"
    READ_TIMEOUT = "ReadTimeout"
    TRANSPORT_ERROR = "TransportError"
    HTTP_STATUS = "HTTPStatusError"
    BAD_RESPONSE = "BadResponse"
    CONFIGURATION = "ConfigurationError"
    VALIDATION = "ValidationError"


class NotifyState(StrEnum):
    """How far a notification got: ``notify_task`` is ``sent``; ``notify_url`` is ``delivered``
    or, after ``NOTIFY_MAX_ATTEMPTS`` or a permanent refusal, ``undeliverable``."""

    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"


class JobConflict(ValueError):
    """Raised when a job id is reused with a different request."""


class JobNotFound(KeyError):
    """Raised when no record exists for a job id."""


class WrongState(ValueError):
    """Raised when an operation (cancel, retry) is refused in the job's current state; the
    message says why, for the caller."""


class StaleAttempt(WrongState):
    """Raised when a cancel or retry names an attempt (``expected_attempt``) that is no longer
    the job's: the caller acted on a stale view, and nothing was changed."""

    def __init__(self, job_id: str, expected: int, attempt: int) -> None:
        super().__init__(
            f"job {job_id} is at attempt {attempt}, not {expected}: it changed since it was "
            "looked at (another tab or caller acted on it); nothing was done"
        )
        self.expected = expected
        self.attempt = attempt


def _opt_f(h: dict[str, str], k: str) -> float | None:
    return float(h[k]) if h.get(k) else None


def _opt_i(h: dict[str, str], k: str) -> int | None:
    return int(h[k]) if h.get(k) else None


def _opt_s(h: dict[str, str], k: str) -> str | None:
    return h.get(k) or None


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    request: dict[str, Any]
    state: JobState
    owner_task_id: str
    akool_id: str | None
    akool_status: AudioStatus | None
    audio_url: str | None
    submit_attempts: int
    ambiguous_submits: int
    polls: int
    transient_errors: int
    created_at: float
    updated_at: float
    submitted_at: float | None
    completed_at: float | None
    deadline_at: float | None
    file: str | None
    location: str | None
    sha256: str | None
    bytes: int | None
    error_code: str | None
    error_message: str | None
    notify_state: NotifyState | None
    notify_task_state: NotifyState | None
    due_at: float | None = None  # when the next poll is planned
    detected_at: float | None = None  # when a poll first saw status 3
    poll_lag_max: float | None = None  # worst lateness of a poll against its plan
    submit_lease_until: float | None = None  # a worker is POSTing until then
    sweeps: int = 0  # how often the sweeper restarted this job's next step
    finished_at: float | None = None  # when a finisher claimed the job (published, notified)
    orphan_akool_id: str | None = None  # an Akool job created after this one was recorded
    storage_error: str | None = None  # why the result store refused the result (last time)
    storage_since: float | None = None  # when the store first refused it
    storage_attempts: int = 0
    staged: str | None = None  # the fetched file's name while it waits for the store
    attempt: int = 1  # 1 for the first run, N+1 after N retries
    attempts: tuple[dict[str, Any], ...] = ()  # the earlier attempts, oldest first
    cancel_requested_at: float | None = None
    credits: float | None = None  # v4: Akool's deduction_credit, charged at submit
    #: v4 clone-then-speak: ``cloning`` while the voice is made, ``speaking`` once it is ready
    stage: str | None = None
    voice_doc_id: str | None = None  # v4 clone: the cloned voice's document _id
    cloned_voice_id: str | None = None  # v4 clone: the voice_id it speaks with
    voice_polls: int = 0  # v4 clone: detail calls on the cloned voice

    @property
    def api(self) -> str:
        """The key of the job's API in ``worker.akool.speech.APIS`` (a record without ``api``
        in its request is a v3 job)."""
        return api_of(self.request)

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Job:
        status = _opt_i(h, "akool_status")
        notify, notify_task = _opt_s(h, "notify_state"), _opt_s(h, "notify_task_state")
        return cls(
            job_id=h["job_id"],
            kind=h["kind"],
            request=json.loads(h["request"]),
            state=JobState(h["state"]),
            owner_task_id=h.get("owner_task_id", ""),
            akool_id=_opt_s(h, "akool_id"),
            akool_status=None if status is None else AudioStatus(status),
            audio_url=_opt_s(h, "audio_url"),
            submit_attempts=int(h.get("submit_attempts", 0)),
            ambiguous_submits=int(h.get("ambiguous_submits", 0)),
            polls=int(h.get("polls", 0)),
            transient_errors=int(h.get("transient_errors", 0)),
            created_at=float(h["created_at"]),
            updated_at=float(h["updated_at"]),
            submitted_at=_opt_f(h, "submitted_at"),
            completed_at=_opt_f(h, "completed_at"),
            deadline_at=_opt_f(h, "deadline_at"),
            file=_opt_s(h, "file"),
            location=_opt_s(h, "location"),
            sha256=_opt_s(h, "sha256"),
            bytes=_opt_i(h, "bytes"),
            error_code=_opt_s(h, "error_code"),
            error_message=_opt_s(h, "error_message"),
            notify_state=None if notify is None else NotifyState(notify),
            notify_task_state=None if notify_task is None else NotifyState(notify_task),
            due_at=_opt_f(h, "due_at"),
            detected_at=_opt_f(h, "detected_at"),
            poll_lag_max=_opt_f(h, "poll_lag_max"),
            submit_lease_until=_opt_f(h, "submit_lease_until"),
            sweeps=int(h.get("sweeps", 0)),
            finished_at=_opt_f(h, "finished_at"),
            orphan_akool_id=_opt_s(h, "orphan_akool_id"),
            storage_error=_opt_s(h, "storage_error"),
            storage_since=_opt_f(h, "storage_since"),
            storage_attempts=int(h.get("storage_attempts", 0)),
            staged=_opt_s(h, "staged"),
            attempt=int(h.get("attempt", 1)),
            attempts=tuple(json.loads(h["attempts"])) if h.get("attempts") else (),
            cancel_requested_at=_opt_f(h, "cancel_requested_at"),
            credits=_opt_f(h, "credits"),
            stage=_opt_s(h, "stage"),
            voice_doc_id=_opt_s(h, "voice_doc_id"),
            cloned_voice_id=_opt_s(h, "cloned_voice_id"),
            voice_polls=int(h.get("voice_polls", 0)),
        )

    def summary(self, download_url: str | None = None) -> dict[str, Any]:
        """The final result: what callers and notifications receive (README, "The result").
        ``download_url`` is a fresh link to the stored result (None for a local store)."""
        error = None
        if self.state in (JobState.FAILED, JobState.CANCELLED):
            error = {"code": self.error_code, "message": self.error_message}
        return {
            "job_id": self.job_id,
            "state": self.state.value,
            "akool_id": self.akool_id,
            "audio_url": self.audio_url,
            "file": self.file,
            "location": self.location,
            "download_url": download_url,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "error": error,
            "attempt": self.attempt,
            "api": self.api,
            # v4 reports what a job cost (null for v3, which reports nothing)
            "credits": self.credits if _reports_credits(self.api) else None,
            # the caller's own pairs ({} when none) and the batch it came in (null when none)
            "metadata": dict(self.request.get("metadata") or {}),
            "batch_id": self.request.get("batch_id"),
        }


def _reports_credits(api: str) -> bool:
    known = APIS.get(api)
    return known is not None and known.reports_credits


def request_fingerprint(kind: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"kind": kind, **request}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
