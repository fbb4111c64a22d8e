"""The request of a job: the JSON kwargs of ``audio.create`` / ``audio.clone``, validated into
one typed request, and the rules of a job id.

Everything is checked before a record is written or anything is sent to Akool; the error names
the field. Unknown kwargs are refused (a typo such as ``voiceId`` must not silently be ignored).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from config.settings import Settings
from worker.akool.errors import ValidationError
from worker.akool.validation import (
    validate_http_url,
    validate_rate,
    validate_text,
    validate_voice_id,
)

Kind = Literal["create", "clone"]
# A job id names files and object keys: no path separators, no leading dot, no "..".
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_COMMON = {"input_text", "rate", "job_id", "notify_url", "notify_task", "notify_queue"}
ALLOWED: dict[str, frozenset[str]] = {
    "create": frozenset(_COMMON | {"voice_id"}),
    "clone": frozenset(_COMMON | {"voice_url", "voice_id"}),
}


class InvalidRequest(ValueError):
    """Raised when a job's kwargs are invalid; ``field`` names the first bad one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if not message.startswith(field) else message)
        self.field = field


@dataclass(frozen=True)
class AudioRequest:
    kind: Kind
    input_text: str
    rate: str
    voice_id: str | None
    voice_url: str | None
    notify_url: str | None
    notify_task: str | None
    notify_queue: str

    def to_record(self) -> dict[str, Any]:
        """The request as stored in the job record (and compared for idempotency)."""
        return asdict(self)


def _opt_str(kwargs: Mapping[str, Any], name: str) -> str | None:
    value = kwargs.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(name, f"must be a string, got {type(value).__name__}")
    return value


def is_job_id(value: str) -> bool:
    """True when ``value`` may be a job id (and so a file name)."""
    return bool(JOB_ID_RE.match(value)) and ".." not in value


def parse_job_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not is_job_id(value):
        raise InvalidRequest(
            "job_id",
            "must be 1-128 characters of letters, digits, '_', '-' or '.', starting "
            f"with a letter or digit, got {str(value)[:60]!r}",
        )
    return value


def parse_request(kind: str, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
    if kind not in ALLOWED:
        raise InvalidRequest("kind", f"must be create or clone, got {kind!r}")
    unknown = sorted(set(kwargs) - ALLOWED[kind])
    if unknown:
        raise InvalidRequest(
            unknown[0],
            f"unknown argument(s) {', '.join(unknown)} for "
            f"audio.{kind}; allowed: {', '.join(sorted(ALLOWED[kind]))}",
        )
    allow = settings.allow_private_hosts
    try:
        text = validate_text(kwargs.get("input_text"), settings.akool_max_words)
        rate = validate_rate(kwargs.get("rate", "100%"))
        voice_id = _opt_str(kwargs, "voice_id")
        voice_url = _opt_str(kwargs, "voice_url")
        if kind == "create" or voice_url is None:
            if voice_id is None:
                field = "voice_id" if kind == "create" else "voice_url"
                raise InvalidRequest(
                    field,
                    "is required" if kind == "create" else "voice_url or voice_id is required",
                )
            voice_id = validate_voice_id(voice_id)
        if voice_url is not None:
            if voice_id is not None:
                raise InvalidRequest("voice_url", "give voice_url or voice_id, not both")
            voice_url = validate_http_url("voice_url", voice_url, allow_hosts=allow)
        notify_url = _opt_str(kwargs, "notify_url")
        if notify_url is not None:
            notify_url = validate_http_url("notify_url", notify_url, allow_hosts=allow)
    except ValidationError as exc:
        raise InvalidRequest(exc.field, str(exc)) from None
    notify_task = _opt_str(kwargs, "notify_task")
    if notify_task is not None and (len(notify_task) > 200 or not _TASK_NAME.match(notify_task)):
        raise InvalidRequest("notify_task", f"must be a dotted task name, got {notify_task[:60]!r}")
    notify_queue = _opt_str(kwargs, "notify_queue") or "celery"
    if len(notify_queue) > 200 or not re.fullmatch(r"[A-Za-z0-9_.:-]+", notify_queue):
        raise InvalidRequest("notify_queue", f"is not a valid queue name: {notify_queue[:60]!r}")
    return AudioRequest(
        cast(Kind, kind), text, rate, voice_id, voice_url, notify_url, notify_task, notify_queue
    )


def from_record(record: Mapping[str, Any]) -> AudioRequest:
    return AudioRequest(**record)
