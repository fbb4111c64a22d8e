"""The request of a job: the JSON kwargs of ``audio.create`` / ``audio.clone``, validated into
one typed request, and the rules of a job id.

Everything is checked before a record is written or anything is sent to Akool; the error names
the field. Unknown kwargs are refused (a typo such as ``voiceId`` must not silently be ignored).

``api`` picks Akool's API per job: ``"v3"`` (Audio) or ``"v4"`` (VoiceLab), by default
``AKOOL_API_VERSION``. The VoiceLab options (``voice_options``, ``language_code``,
``extra_options``; for a clone also ``source_voice_file``, ``voice_model_name`` and
``clone_options``) are accepted only with ``api="v4"``, and ``rate`` only with v3: for v4 it is
refused with a message naming ``voice_options.speed``, never mapped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

from config.settings import Settings
from worker.akool.errors import ValidationError
from worker.akool.v4options import (
    plan_name,
    rate_refused,
    validate_clone_model,
    validate_clone_options,
    validate_extra_options,
    validate_language_code,
    validate_v4_text,
    validate_voice_options,
)
from worker.akool.validation import (
    validate_http_url,
    validate_rate,
    validate_text,
    validate_voice_id,
)

Kind = Literal["create", "clone"]
Api = Literal["v3", "v4"]
APIS: tuple[Api, ...] = ("v3", "v4")
# A job id names files and object keys: no path separators, no leading dot, no "..".
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_COMMON = {"input_text", "rate", "job_id", "notify_url", "notify_task", "notify_queue", "api"}
#: The VoiceLab (v4) options of the speech, and those of a v4 clone's voice.
V4_SPEECH = frozenset({"voice_options", "language_code", "extra_options"})
V4_CLONE = frozenset({"source_voice_file", "voice_model_name", "clone_options"})
ALLOWED: dict[str, frozenset[str]] = {
    "create": frozenset(_COMMON | {"voice_id"} | V4_SPEECH),
    "clone": frozenset(_COMMON | {"voice_url", "voice_id"} | V4_SPEECH | V4_CLONE),
}
#: Fields a v3 request never has: left out of its record, so a v3 job's fingerprint is the same
#: as before VoiceLab existed (a job id sent again must not be a conflict).
_V4_ONLY = ("voice_options", "language_code", "extra_options", "voice_model_name", "clone_options")


class InvalidRequest(ValueError):
    """Raised when a job's kwargs are invalid; ``field`` names the first bad one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if not message.startswith(field) else message)
        self.field = field


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
    api: Api = "v3"
    voice_options: dict[str, Any] | None = None
    language_code: str | None = None
    extra_options: dict[str, Any] | None = None
    voice_model_name: str | None = None
    clone_options: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        """The request as stored in the job record (and compared for idempotency); a v3
        request's record has no ``api`` and no v4 field."""
        record = asdict(self)
        if self.api == "v3":
            for name in ("api", *_V4_ONLY):
                record.pop(name)
        return record


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


def parse_api(kwargs: Mapping[str, Any], settings: Settings) -> Api:
    """The job's API: the ``api`` kwarg, else ``AKOOL_API_VERSION``."""
    api = kwargs.get("api")
    if api is None:
        api = settings.akool_api_version
    if api not in APIS:
        raise InvalidRequest("api", f'must be "v3" or "v4", got {str(api)[:20]!r}')
    return cast(Api, api)


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
    api = parse_api(kwargs, settings)
    if api == "v4":
        return _parse_v4(cast(Kind, kind), kwargs, settings)
    v4_given = sorted((V4_SPEECH | V4_CLONE) & set(kwargs))
    if v4_given:
        raise InvalidRequest(
            v4_given[0],
            f'is a VoiceLab (v4) option: pass api="v4" to use it (this job is {api})',
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
    notify_task, notify_queue = _notify_options(kwargs)
    return AudioRequest(
        cast(Kind, kind), text, rate, voice_id, voice_url, notify_url, notify_task, notify_queue
    )


def _notify_options(kwargs: Mapping[str, Any]) -> tuple[str | None, str]:
    notify_task = _opt_str(kwargs, "notify_task")
    if notify_task is not None and (len(notify_task) > 200 or not _TASK_NAME.match(notify_task)):
        raise InvalidRequest("notify_task", f"must be a dotted task name, got {notify_task[:60]!r}")
    notify_queue = _opt_str(kwargs, "notify_queue") or "celery"
    if len(notify_queue) > 200 or not re.fullmatch(r"[A-Za-z0-9_.:-]+", notify_queue):
        raise InvalidRequest("notify_queue", f"is not a valid queue name: {notify_queue[:60]!r}")
    return notify_task, notify_queue


def _parse_v4(kind: Kind, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
    """A VoiceLab job: create speaks with ``voice_id``; clone clones a voice from
    ``source_voice_file`` (``voice_url`` is the same field under its v3 name), then speaks,
    or speaks at once with an existing ``voice_id``."""
    allow = settings.allow_private_hosts
    if "rate" in kwargs:
        exc = rate_refused()
        raise InvalidRequest(exc.field, str(exc))
    if kind == "create":
        given = sorted(V4_CLONE & set(kwargs))
        if given:
            raise InvalidRequest(given[0], "is for audio.clone, not audio.create")
    try:
        text = validate_v4_text(kwargs.get("input_text"), plan_name(settings.akool_plan))
        voice_id = _opt_str(kwargs, "voice_id")
        sample = _opt_str(kwargs, "source_voice_file")
        if sample is not None and _opt_str(kwargs, "voice_url") is not None:
            raise InvalidRequest(
                "voice_url", "give source_voice_file or voice_url (the same sample), not both"
            )
        sample = sample if sample is not None else _opt_str(kwargs, "voice_url")
        if kind == "create" or sample is None:
            if voice_id is None:
                raise InvalidRequest(
                    "voice_id" if kind == "create" else "source_voice_file",
                    "is required"
                    if kind == "create"
                    else "source_voice_file (the sample to clone) or voice_id is required",
                )
            voice_id = validate_voice_id(voice_id)
        if sample is not None:
            if voice_id is not None:
                raise InvalidRequest("source_voice_file", "give a sample or voice_id, not both")
            sample = validate_http_url("source_voice_file", sample, allow_hosts=allow)
        elif "voice_model_name" in kwargs or "clone_options" in kwargs:
            field = "voice_model_name" if "voice_model_name" in kwargs else "clone_options"
            raise InvalidRequest(field, "applies to a clone from source_voice_file only")
        options = kwargs.get("voice_options")
        extra = kwargs.get("extra_options")
        language = kwargs.get("language_code")
        model = kwargs.get("voice_model_name")
        clone = kwargs.get("clone_options")
        notify_url = _opt_str(kwargs, "notify_url")
        if notify_url is not None:
            notify_url = validate_http_url("notify_url", notify_url, allow_hosts=allow)
        request = AudioRequest(
            kind=kind,
            input_text=text,
            rate=None,
            voice_id=voice_id,
            voice_url=sample,
            notify_url=notify_url,
            notify_task=None,
            notify_queue="celery",
            api="v4",
            voice_options=None if options is None else validate_voice_options(options),
            language_code=None if language is None else validate_language_code(language),
            extra_options=None if extra is None else validate_extra_options(extra),
            voice_model_name=None if model is None else validate_clone_model(model),
            clone_options=None if clone is None else validate_clone_options(clone),
        )
    except ValidationError as exc:
        raise InvalidRequest(exc.field, str(exc)) from None
    notify_task, notify_queue = _notify_options(kwargs)
    return replace(request, notify_task=notify_task, notify_queue=notify_queue)


def from_record(record: Mapping[str, Any]) -> AudioRequest:
    return AudioRequest(**record)


def api_of(record: Mapping[str, Any]) -> Api:
    """The API of a stored request (a record without ``api`` is a v3 job)."""
    return cast(Api, record.get("api") or "v3")
