"""How a job is shown: Akool's record (the ``data`` of create, clone and detail) and the admin
view (``/_sandbox/jobs``)."""

from __future__ import annotations

from typing import Any

from sandbox.lifecycle import Job
from sandbox.tokens import UID


def file_url(base_url: str, job_id: str) -> str:
    return f"{base_url}/files/{job_id}.wav"


def akool_record(job: Job, status: int, base_url: str) -> dict[str, Any]:
    """The record as Akool answers it; ``url`` only at status 3."""
    rec: dict[str, Any] = {
        "_id": job.id,
        "create_time": int(job.created_at * 1000),
        "uid": UID,
        "from": 3,
        "input_text": job.input_text,
        "rate": job.rate,
        "voice_model_id": job.voice_model_id,
    }
    if status == 3:
        rec["url"] = file_url(base_url, job.id)
    rec["status"] = status
    rec["__v"] = 0
    return rec


def admin_view(job: Job, now: float, base_url: str) -> dict[str, Any]:
    """Everything a test may check; ``url``, ``sha256`` and ``bytes`` are null until status 3.

    The digest is computed once, on the first view of a done job, and kept on the job.
    """
    status = job.status(now)
    done = status == 3
    if done and job.digest is None:
        job.digest = job.audio.digest()
    return {
        "_id": job.id,
        "status": status,
        "input_text": job.input_text,
        "voice_id": job.voice_id,
        "voice_url": job.voice_url,
        "rate": job.rate,
        "webhookUrl": job.webhook_url,
        "url": file_url(base_url, job.id) if done else None,
        "sha256": job.digest if done else None,
        "bytes": job.audio.size if done else None,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "polls": job.polls,
        "endpoint": job.endpoint,
        "url_404": job.url_404,
        "api": job.api,
        "credits": job.credits,
        "format": job.extra.get("format", "wav" if job.api == 3 else "mp3"),
        "sample_rate": job.audio.sample_rate,
        "channels": job.audio.channels,
        "voice_options": job.extra.get("voice_options"),
        "language_code": job.extra.get("language_code"),
        "new_voice_id": job.extra.get("new_voice_id"),
    }
