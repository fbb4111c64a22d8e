"""The kinds of event on a job's timeline (README, "The timeline"), each with the line the job
page shows for it. Events are written by the job scripts (worker/lua/) and by the steps through
the job store; tests/unit/test_states_events.py fails when either writes a kind not listed here.
"""

from __future__ import annotations

from enum import StrEnum


class EventKind(StrEnum):
    """One kind of timeline event; ``description`` is its line on the job page. A member is
    declared as ``NAME = "value", "description"``, so none exists without its description."""

    _value_: str
    description: str

    def __new__(cls, value: str, description: str) -> EventKind:
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    ACCEPTED = "accepted", "The job was recorded and waits for a worker to submit it."
    SUBMIT_STARTED = "submit_started", "A worker took the submit lease and sends the job to Akool."
    SUBMITTED = "submitted", "Akool accepted the job and gave it an id."
    SUBMIT_FAILED = "submit_failed", "Sending the job to Akool failed; it is tried again or fails."
    POLL = "poll", "A worker asked Akool for the job's status."
    WEBHOOK = "webhook", "Akool called back with the job's status."
    STATUS = "status", "Akool's status for the job changed."
    DOWNLOADED = "downloaded", "The result was fetched from Akool's URL."
    DOWNLOAD_FAILED = "download_failed", "Fetching the result from Akool's URL failed."
    STORING_REFUSED = "storing_refused", "The result store refused the result; it is tried again."
    STORED = "stored", "The result was saved in the result store."
    SUCCEEDED = "succeeded", "The job ended with its result stored."
    FAILED = "failed", "The job ended without a result; the error says why."
    ERROR = "error", "A step failed while the job was being cancelled."
    NOTIFIED = "notified", "The caller's notify_task or notify_url was sent the summary."
    CANCEL_REQUESTED = "cancel_requested", "Someone asked to cancel the job."
    CANCELLED = "cancelled", "The job ended cancelled: nothing more is sent, fetched or stored."
    RETRIED = "retried", "Someone asked to run the failed or cancelled job again."
    SWEPT = "swept", "The sweeper restarted a step that had stalled."
    # v4 clone-then-speak: the voice is cloned from the sample once, then the job speaks with it
    CLONE_STARTED = "clone_started", "A worker asks Akool to clone a voice from the sample."
    CLONE_AMBIGUOUS = (
        "clone_ambiguous",
        "An earlier clone request's outcome is unknown; Akool's voices are searched for it.",
    )
    CLONE_ADOPTED = "clone_adopted", "A voice cloned by an earlier request was found and is used."
    CLONED = "cloned", "Akool accepted the clone request and gave the voice an id."
    VOICE_POLLED = "voice_polled", "A worker asked Akool whether the cloned voice is ready."
    CLONE_FAILED = "clone_failed", "A call of the voice clone failed; it is tried again or fails."
    VOICE_READY = "voice_ready", "The cloned voice is ready; the job speaks with it."


_BY_VALUE = {k.value: k for k in EventKind}


def event_kind(value: str) -> EventKind | None:
    """The kind an event's ``type`` names; None for one this version does not know (an event
    written by a newer version, read during an upgrade)."""
    return _BY_VALUE.get(value)
