"""How VoiceLab (v4) records are shown: the tts answer, the resource detail's ``result`` and a
cloned voice (voice detail and ``voice/list?type=1``).

The audio URL is ``preview``, null until status 3 (there is no ``url``); ``duration`` is in
milliseconds, 0 until done; times are epoch milliseconds. ``file_name`` is not the basename of
``preview`` (A6), as at Akool. Files are always WAV at ``/files/{_id}.wav``: the sandbox cannot
encode MP3, so ``format: mp3`` (the default) gets v3's generator and ``format: wav`` a WAV at the
requested sample rate and channels.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sandbox.lifecycle import Job
from sandbox.tokens import UID
from sandbox.v4voices import PREVIEW_TEXT, STREAMING, TEAM_ID
from sandbox.views import file_url


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def file_name(job: Job) -> str:
    """32 hex and the requested format's extension, as Akool's create answer shows."""
    digest = hashlib.md5(job.id.encode(), usedforsecurity=False).hexdigest()
    return f"{digest}.{job.extra.get('format', 'mp3')}"


def preview_url(base_url: str, voice_id: str) -> str:
    return f"{base_url}/previews/{voice_id}.wav"


def tts_record(job: Job, status: int, base_url: str) -> dict[str, Any]:
    """The ``data`` of ``POST /api/open/v4/voice/tts``."""
    voice = job.extra["voice"]
    done = status == 3
    return {
        "_id": job.id,
        "create_time": _ms(job.created_at),
        "uid": UID,
        "team_id": TEAM_ID,
        "input_text": job.input_text,
        "status": status,
        "webhookUrl": job.webhook_url,
        "duration": job.audio.duration_ms if done else 0,
        "file_name": file_name(job),
        "gender": voice.get("gender") or "",
        "deduction_credit": job.credits,
        "name": hashlib.md5(f"name{job.id}".encode(), usedforsecurity=False).hexdigest(),
        "voice_model_id": voice["_id"],
        "voice_id": voice["voice_id"],
        "voice_options": job.extra.get("voice_options", {}),
        "preview": file_url(base_url, job.id) if done else None,
    }


def resource_record(job: Job, status: int, base_url: str, now: float) -> dict[str, Any]:
    """The record of ``GET .../voice/resource/detail/{_id}`` (at ``data.result``)."""
    done = status in (3, 4)
    return {
        "_id": job.id,
        "create_time": _ms(job.created_at),
        "update_time": _ms(job.completed_at or now) if done else 0,
        "uid": UID,
        "team_id": TEAM_ID,
        "input_text": job.input_text,
        "rate": "100%",  # a leftover field of the detail
        "status": status,
        "webhookUrl": job.webhook_url,
        "duration": job.audio.duration_ms if status == 3 else 0,
        "file_name": file_name(job),
        "gender": job.extra["voice"].get("gender") or "",
        "deduction_credit": job.credits,
        "name": hashlib.md5(f"name{job.id}".encode(), usedforsecurity=False).hexdigest(),
        "priority": 2,
        "language_code": job.extra.get("language_code") or "",
        "__v": 0,
        "preview": file_url(base_url, job.id) if status == 3 else None,
    }


def clone_record(job: Job, status: int, base_url: str, now: float) -> dict[str, Any]:
    """A cloned voice: ``voice_id`` and ``preview`` are null until status 3; ``gender`` is a
    string although the request sends an array (A13)."""
    options = job.extra.get("voice_options", {})
    model = job.extra["voice_model_name"]
    done = status == 3
    genders = options.get("gender") or []
    language = options.get("language") or "en"
    return {
        "_id": job.id,
        "uid": UID,
        "team_id": TEAM_ID,
        "voice_id": job.extra["new_voice_id"] if done else None,
        "gender": genders[0] if genders else "",
        "language": language,
        "locale": language,
        "name": job.extra.get("name") or f"Clone {job.id[-6:]}",
        "preview": preview_url(base_url, job.extra["new_voice_id"]) if done else None,
        "text": PREVIEW_TEXT,
        "duration": job.audio.duration_ms if done else 0,
        "status": status,
        "create_time": _ms(job.created_at),
        "update_time": _ms(job.completed_at or now) if status in (3, 4) else 0,
        "style": options.get("style", []),
        "scenario": options.get("scenario", []),
        "age": options.get("age", []),
        "deduction_credit": 0,
        "webhookUrl": job.webhook_url,
        "source_voice_file": job.voice_url,
        "voice_model_name": model,
        "support_stream": model in STREAMING,
    }
