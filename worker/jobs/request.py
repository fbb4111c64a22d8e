"""The request of a job: the JSON kwargs of ``audio.create`` / ``audio.clone``, validated into
one typed request, and the rules of a job id.

Everything is checked before a record is written or anything is sent to Akool; the error names
the field. Unknown kwargs are refused (a typo such as ``voiceId`` must not silently be ignored).

``api`` picks Akool's API per job: ``"v3"`` (Audio) or ``"v4"`` (VoiceLab), by default
``AKOOL_API_VERSION``. The VoiceLab options (``voice_options``, ``language_code``,
``extra_options``; for a clone also ``source_voice_file``, ``voice_model_name`` and
``clone_options``) are accepted only with ``api="v4"``, and ``rate`` only with v3: for v4 it is
refused with a message naming ``voice_options.speed``, never mapped. Each API's adapter
(``worker.akool.speech.APIS``) says which of these it takes and validates them; this module is
the entry point, with no version of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, cast

from config.settings import Settings
from worker.akool.audiorequest import COMMON, Api, AudioRequest, Kind, api_of, opt_str
from worker.akool.errors import ValidationError
from worker.akool.speech import APIS, speech_api

__all__ = [
    "ALLOWED",
    "APIS",
    "CELERY_ONLY",
    "Api",
    "AudioRequest",
    "InvalidRequest",
    "Kind",
    "api_of",
    "check_http_fields",
    "from_record",
    "is_job_id",
    "parse_api",
    "parse_http_request",
    "parse_job_id",
    "parse_metadata",
    "parse_request",
]

# A job id names files and object keys: no path separators, no leading dot, no "..".
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
#: Kwargs that make a worker send a named task to any queue of our broker: for callers that
#: already enqueue through Celery (or an operator's command line), never for an HTTP request.
CELERY_ONLY = ("notify_queue", "notify_task")
#: Every kwarg of a request of each kind, whatever its API.
ALLOWED: dict[str, frozenset[str]] = {
    kind: COMMON.union(*(api.fields(kind) for api in APIS.values())) for kind in ("create", "clone")
}


class InvalidRequest(ValueError):
    """Raised when a job's kwargs are invalid; ``field`` names the first bad one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if not message.startswith(field) else message)
        self.field = field


def _opt_str(kwargs: Mapping[str, Any], name: str) -> str | None:
    try:
        return opt_str(kwargs, name)
    except ValidationError as exc:
        raise InvalidRequest(exc.field, str(exc)) from None


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
    try:
        return speech_api(api).name
    except ValueError as exc:
        raise InvalidRequest("api", str(exc)) from None


def parse_request(kind: str, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
    """The typed request of ``audio.<kind>``'s kwargs; the API's adapter validates its own
    fields (worker/akool/speech.py). Raises :class:`InvalidRequest` for the first bad one."""
    if kind not in ALLOWED:
        raise InvalidRequest("kind", f"must be create or clone, got {kind!r}")
    unknown = sorted(set(kwargs) - ALLOWED[kind])
    if unknown:
        raise InvalidRequest(
            unknown[0],
            f"unknown argument(s) {', '.join(unknown)} for "
            f"audio.{kind}; allowed: {', '.join(sorted(ALLOWED[kind]))}",
        )
    api = speech_api(parse_api(kwargs, settings))
    k = cast(Kind, kind)
    try:
        foreign = sorted(set(kwargs) - COMMON - api.fields(k))
        if foreign:
            owner = next(a for a in APIS.values() if foreign[0] in a.fields(k))
            raise api.refuse(foreign[0], owner.name, owner.label)
        request = api.parse(k, kwargs, settings)
    except ValidationError as exc:
        raise InvalidRequest(exc.field, str(exc)) from None
    notify_task, notify_queue = _notify_options(kwargs)
    return replace(
        request,
        notify_task=notify_task,
        notify_queue=notify_queue,
        metadata=parse_metadata(kwargs.get("metadata")),
    )


METADATA_MAX_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 40, 500


def parse_metadata(value: Any) -> dict[str, str] | None:
    """The caller's ``metadata``: at most 16 string keys (1-40 characters) with string values
    (up to 500); None when absent or empty. Raises InvalidRequest naming the key at fault."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRequest(
            "metadata", f"must be an object of strings, got {type(value).__name__}"
        )
    if len(value) > METADATA_MAX_KEYS:
        raise InvalidRequest(
            "metadata", f"has {len(value)} keys; at most {METADATA_MAX_KEYS} are allowed"
        )
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_KEY_CHARS:
            raise InvalidRequest(
                "metadata",
                f"key {str(key)[:60]!r} must be 1-{METADATA_KEY_CHARS} characters",
            )
        if not isinstance(item, str):
            raise InvalidRequest(
                "metadata", f"value of {key!r} must be a string, got {type(item).__name__}"
            )
        if len(item) > METADATA_VALUE_CHARS:
            raise InvalidRequest(
                "metadata",
                f"value of {key!r} has {len(item)} characters; at most "
                f"{METADATA_VALUE_CHARS} are allowed",
            )
    return dict(value) or None


def check_http_fields(kwargs: Mapping[str, Any]) -> None:
    """Refuse what a request that came over HTTP may not ask (see :func:`parse_http_request`)."""
    for name in CELERY_ONLY:
        if name in kwargs:
            raise InvalidRequest(
                name,
                f"{name} is for callers that enqueue through Celery; over HTTP use notify_url",
            )


def parse_http_request(kind: str, kwargs: Mapping[str, Any], settings: Settings) -> AudioRequest:
    """The one place that decides what a request that came over HTTP may ask: a job of
    ``POST /v1/jobs`` and the request of a schedule of ``POST /v1/schedules`` alike. It is
    :func:`parse_request` without the :data:`CELERY_ONLY` options; over HTTP ``notify_url`` is
    the way to be told."""
    check_http_fields(kwargs)
    return parse_request(kind, kwargs, settings)


def _notify_options(kwargs: Mapping[str, Any]) -> tuple[str | None, str]:
    notify_task = _opt_str(kwargs, "notify_task")
    if notify_task is not None and (len(notify_task) > 200 or not _TASK_NAME.match(notify_task)):
        raise InvalidRequest("notify_task", f"must be a dotted task name, got {notify_task[:60]!r}")
    notify_queue = _opt_str(kwargs, "notify_queue") or "celery"
    if len(notify_queue) > 200 or not re.fullmatch(r"[A-Za-z0-9_.:-]+", notify_queue):
        raise InvalidRequest("notify_queue", f"is not a valid queue name: {notify_queue[:60]!r}")
    return notify_task, notify_queue


def from_record(record: Mapping[str, Any]) -> AudioRequest:
    return AudioRequest(**record)
