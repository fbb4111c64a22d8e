"""The typed request of a job (the JSON kwargs of ``audio.create`` / ``audio.clone`` once
valid) and the checks every API's adapter shares. Each adapter (:mod:`worker.akool.speech`)
builds it from its own fields; :mod:`worker.jobs.request` is the entry point that picks the
adapter and names the first bad field."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from worker.akool.errors import ValidationError
from worker.akool.validation import validate_http_url

Kind = Literal["create", "clone"]
#: The key of an API in the registry (``worker.akool.speech.APIS``).
Api = str
#: The API of a record written before ``api`` existed: such a record has no ``api``.
LEGACY_API: Api = "v3"
#: The kwargs of a request whatever its API; each API adds its own (``SpeechApi.fields``).
COMMON = frozenset(
    {
        "input_text",
        "voice_id",
        "job_id",
        "notify_url",
        "notify_task",
        "notify_queue",
        "api",
        "metadata",
    }
)
#: Fields a request of the legacy API never has: left out of its record, so such a job's
#: fingerprint is the same as before VoiceLab existed (a job id sent again must not be a conflict).
_LEGACY_OMITS = (
    "voice_options",
    "language_code",
    "extra_options",
    "voice_model_name",
    "clone_options",
)


@dataclass(frozen=True)
class AudioRequest:
    """A valid request. ``voice_url`` is the sample of a clone (v4's ``source_voice_file``);
    ``rate`` is None for v4. The v4 fields are None for v3."""

    kind: Kind
    input_text: str
    rate: str | None
    voice_id: str | None
    voice_url: str | None
    notify_url: str | None
    notify_task: str | None
    notify_queue: str
    api: Api = LEGACY_API
    voice_options: dict[str, Any] | None = None
    language_code: str | None = None
    extra_options: dict[str, Any] | None = None
    voice_model_name: str | None = None
    clone_options: dict[str, Any] | None = None
    #: The caller's own string pairs, returned with the job; they never reach Akool.
    metadata: dict[str, str] | None = None
    #: The batch the job was posted in (``POST /v1/batches``), set by the batch, never a kwarg.
    batch_id: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The request as stored in the job record (and compared for idempotency); a legacy
        (v3) request's record has no ``api`` and no v4 field, and a request without metadata
        or batch has neither key (so older records keep their fingerprint)."""
        record = asdict(self)
        for name in ("metadata", "batch_id"):
            if record[name] is None:
                record.pop(name)
        if self.api == LEGACY_API:
            for name in ("api", *_LEGACY_OMITS):
                record.pop(name)
        return record


class RequestError(ValidationError):
    """Raised when a request's kwargs do not fit together (one missing, two that exclude each
    other); a message that starts with its field is kept as it is, as ``InvalidRequest`` does."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        if message.startswith(field):
            self.message = message


def foreign_field(field: str, owner: Api, owner_label: str, api: Api) -> ValidationError:
    """``field`` belongs to another API than the job's."""
    return RequestError(
        field,
        f'is a {owner_label} ({owner}) option: pass api="{owner}" to use it (this job is {api})',
    )


def api_of(record: Mapping[str, Any]) -> Api:
    """The API of a stored request (a record without ``api`` is a legacy job)."""
    return str(record.get("api") or LEGACY_API)


def opt_str(kwargs: Mapping[str, Any], name: str) -> str | None:
    """``kwargs[name]`` when it is a string, None when absent; else ValidationError."""
    value = kwargs.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(name, f"must be a string, got {type(value).__name__}")
    return value


def notify_url(kwargs: Mapping[str, Any], allow: Collection[str]) -> str | None:
    """The request's ``notify_url``, a public http(s) URL (or one of ``allow``'s hosts)."""
    url = opt_str(kwargs, "notify_url")
    return None if url is None else validate_http_url("notify_url", url, allow_hosts=allow)
