"""Typed wire records: the audio job status, an audio job and a voice, parsed defensively."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, assert_never

from worker.akool.errors import BadResponse

__all__ = ["AudioJob", "AudioStatus", "Voice", "parse_job", "parse_voices"]

log = logging.getLogger(__name__)

VOICE_SOURCES = (3, 4)  # 3: Akool's official voices, 4: voices the user made


class AudioStatus(IntEnum):
    """The ``status`` of an Akool audio record."""

    QUEUEING = 1
    PROCESSING = 2
    COMPLETED = 3
    FAILED = 4

    @property
    def is_final(self) -> bool:
        """True for COMPLETED and FAILED: polling can stop."""
        match self:
            case AudioStatus.QUEUEING | AudioStatus.PROCESSING:
                return False
            case AudioStatus.COMPLETED | AudioStatus.FAILED:
                return True
            case _:
                assert_never(self)


@dataclass(frozen=True)
class AudioJob:
    """An audio record from create, clone or detail (v3), or from tts or resource detail (v4).

    ``id`` is Akool's ``_id`` (the ``audio_model_id`` to poll; v4's resource id). ``url`` is the
    audio (valid for 7 days) once COMPLETED: v3's ``url``, v4's ``preview``. ``raw`` is the whole
    record, for logs (FAILED has no documented reason). v4 only: ``credits`` is the record's
    ``deduction_credit`` and ``duration_ms`` its ``duration`` (milliseconds; 0 until done).
    """

    id: str
    status: AudioStatus
    url: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    credits: float | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class Voice:
    """One entry of the voice list; ``source`` is 3 (official) or 4 (user-made), for v4 voices
    too (v4's ``type`` 2 and 1). v4 only: ``model`` (``voice_model_name``) and ``doc_id`` (the
    voice's ``_id``)."""

    voice_id: str
    name: str | None
    source: int
    gender: str | None
    accent: str | None
    description: str | None
    preview: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    api: str = "v3"
    model: str | None = None
    doc_id: str | None = None


def parse_int(value: Any) -> int | None:
    """A wire integer: an int, or a short string of ASCII digits; never a bool."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 10:
        return int(value)
    return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_job(data: Any, *, endpoint: str | None = None) -> AudioJob:
    """Build an ``AudioJob`` from an envelope's ``data``; ``BadResponse`` if it is not one."""
    if not isinstance(data, Mapping):
        raise BadResponse(
            f"expected an audio record object in data, got {type(data).__name__}",
            endpoint=endpoint,
        )
    job_id = data.get("_id")
    if not isinstance(job_id, str) or not job_id:
        raise BadResponse("audio record has no _id", endpoint=endpoint)
    raw_status = data.get("status")
    number = parse_int(raw_status)
    if number is None or number not in AudioStatus._value2member_map_:
        shown = "missing" if raw_status is None else f"{raw_status!r:.40}"
        raise BadResponse(
            f"audio record {job_id} has an unknown status ({shown}); expected 1, 2, 3 or 4",
            endpoint=endpoint,
        )
    return AudioJob(
        id=job_id, status=AudioStatus(number), url=_opt_str(data.get("url")), raw=dict(data)
    )


def parse_voices(data: Any, *, endpoint: str | None = None) -> list[Voice]:
    """Build the voice list from an envelope's ``data`` (a plain array).

    A record without a ``voice_id`` or a known ``from`` is skipped with a warning rather than
    failing the whole list.
    """
    if not isinstance(data, list):
        raise BadResponse(
            f"expected a list of voices in data, got {type(data).__name__}", endpoint=endpoint
        )
    voices: list[Voice] = []
    for index, item in enumerate(data):
        voice_id = item.get("voice_id") if isinstance(item, Mapping) else None
        source = parse_int(item.get("from")) if isinstance(item, Mapping) else None
        if not isinstance(item, Mapping) or not isinstance(voice_id, str) or not voice_id:
            log.warning("skipping voice list entry %d: no voice_id", index)
            continue
        if source not in VOICE_SOURCES:
            log.warning("skipping voice %s: unknown source (from=%r)", voice_id, item.get("from"))
            continue
        voices.append(
            Voice(
                voice_id=voice_id,
                name=_opt_str(item.get("name")),
                source=source,
                gender=_opt_str(item.get("gender")),
                accent=_opt_str(item.get("accent")),
                description=_opt_str(item.get("description")),
                preview=_opt_str(item.get("preview")),
                raw=dict(item),
            )
        )
    return voices
