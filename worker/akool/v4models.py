"""Typed VoiceLab (v4) records, parsed defensively: a TTS job (an ``AudioJob``), a cloned voice
(``ClonedVoice``) and a page of the voice list.

Where the docs disagree, both shapes are accepted (``../shared/akool-v4.md``):

- A5: the resource detail puts the record at ``data.result``, the voice detail at ``data``;
  either parser takes either.
- The audio URL is ``preview``; a record that carries ``url`` instead is read too (A7).
- ``duration`` is in milliseconds; ``deduction_credit`` is a float (a numeric string is read).
- A10: ``page``, ``size`` and ``count`` may come back as strings; ``support_stream`` as a
  boolean or 1/2.
- A13: ``gender`` is a string or a list of strings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.akool.errors import BadResponse
from worker.akool.models import AudioJob, AudioStatus, Voice, parse_int

__all__ = [
    "ClonedVoice",
    "VoicePage",
    "parse_cloned_voice",
    "parse_tts_job",
    "parse_voice_page",
    "record_of",
]

log = logging.getLogger(__name__)

#: v4's voice list ``type`` and v3's ``from`` for the same voices: 2 (Akool's) is 3, 1 is 4.
SOURCE_OF_TYPE = {2: 3, 1: 4}


@dataclass(frozen=True)
class ClonedVoice:
    """A voice record from clone or voice detail: ``id`` is its document ``_id`` (to poll);
    ``voice_id`` and ``preview`` are None until COMPLETED."""

    id: str
    status: AudioStatus
    voice_id: str | None
    preview: str | None
    model: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class VoicePage:
    voices: list[Voice]
    count: int | None  # the total number of matches, when Akool says
    page: int
    size: int
    received: int  # records on this page, including skipped ones


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def record_of(data: Any, *, endpoint: str | None = None) -> Mapping[str, Any]:
    """The record of an envelope's ``data``: at ``data.result`` or at ``data`` itself (A5)."""
    if isinstance(data, Mapping) and "_id" not in data and isinstance(data.get("result"), Mapping):
        data = data["result"]
    if not isinstance(data, Mapping):
        raise BadResponse(
            f"expected a record object in data, got {type(data).__name__}", endpoint=endpoint
        )
    return data


def _id_and_status(record: Mapping[str, Any], what: str, endpoint: str | None) -> tuple[str, int]:
    record_id = record.get("_id")
    if not isinstance(record_id, str) or not record_id:
        raise BadResponse(f"{what} record has no _id", endpoint=endpoint)
    raw_status = record.get("status")
    number = parse_int(raw_status)
    if number is None or number not in AudioStatus._value2member_map_:
        shown = "missing" if raw_status is None else f"{raw_status!r:.40}"
        raise BadResponse(
            f"{what} record {record_id} has an unknown status ({shown}); expected 1, 2, 3 or 4",
            endpoint=endpoint,
        )
    return record_id, number


def parse_tts_job(data: Any, *, endpoint: str | None = None) -> AudioJob:
    """An ``AudioJob`` from a tts answer or a resource detail (``data`` or ``data.result``)."""
    record = record_of(data, endpoint=endpoint)
    job_id, status = _id_and_status(record, "tts", endpoint)
    audio = _opt_str(record.get("preview")) or _opt_str(record.get("url"))
    duration = parse_int(record.get("duration"))
    return AudioJob(
        id=job_id,
        status=AudioStatus(status),
        url=audio,
        raw=dict(record),
        credits=_float(record.get("deduction_credit")),
        duration_ms=duration,
    )


def parse_cloned_voice(data: Any, *, endpoint: str | None = None) -> ClonedVoice:
    """A ``ClonedVoice`` from a clone answer or a voice detail (``data`` or ``data.result``)."""
    record = record_of(data, endpoint=endpoint)
    voice_doc_id, status = _id_and_status(record, "voice", endpoint)
    return ClonedVoice(
        id=voice_doc_id,
        status=AudioStatus(status),
        voice_id=_opt_str(record.get("voice_id")),
        preview=_opt_str(record.get("preview")) or _opt_str(record.get("url")),
        model=_opt_str(record.get("voice_model_name")),
        raw=dict(record),
    )


def _gender(value: Any) -> str | None:
    if isinstance(value, list):  # an array in the clone request, a string elsewhere (A13)
        value = next((v for v in value if isinstance(v, str) and v), None)
    return _opt_str(value)


def v4_voice(item: Mapping[str, Any], voice_type: int) -> Voice | None:
    """One voice-list record as a ``Voice`` (``source`` 3 for ``type`` 2, 4 for ``type`` 1);
    None for a record without a ``voice_id`` (a clone not done yet)."""
    voice_id = _opt_str(item.get("voice_id"))
    if voice_id is None:
        return None
    accent = _opt_str(item.get("language")) or _opt_str(item.get("locale"))
    return Voice(
        voice_id=voice_id,
        name=_opt_str(item.get("name")),
        source=SOURCE_OF_TYPE[voice_type],
        gender=_gender(item.get("gender")),
        accent=accent,
        description=_opt_str(item.get("text")),
        preview=_opt_str(item.get("preview")),
        raw={**item, "type": voice_type},
        api="v4",
        model=_opt_str(item.get("voice_model_name")),
        doc_id=_opt_str(item.get("_id")),
    )


def parse_voice_page(
    data: Any, voice_type: int, *, page: int, size: int, endpoint: str | None = None
) -> VoicePage:
    """A page of ``voice/list``: ``{result, count, page, size}``. Records without a
    ``voice_id`` are skipped (pending clones), with a debug line; the page is still counted."""
    if not isinstance(data, Mapping) or not isinstance(data.get("result"), list):
        raise BadResponse("expected {result: [...], count, page, size} in data", endpoint=endpoint)
    voices: list[Voice] = []
    items = data["result"]
    for index, item in enumerate(items):
        voice = v4_voice(item, voice_type) if isinstance(item, Mapping) else None
        if voice is None:
            log.debug("skipping voice list entry %d of page %d: no voice_id", index, page)
            continue
        voices.append(voice)
    return VoicePage(
        voices=voices,
        count=parse_int(data.get("count")),
        page=parse_int(data.get("page")) or page,
        size=parse_int(data.get("size")) or size,
        received=len(items),
    )


def voice_from_cache(item: Mapping[str, Any]) -> Voice | None:
    """A cached v4 record (its ``type`` kept by ``v4_voice``) as a ``Voice`` again."""
    voice_type = parse_int(item.get("type"))
    if voice_type not in SOURCE_OF_TYPE:
        return None
    return v4_voice(item, voice_type)
