"""What goes out about a job, kept once across the fleet: the final summary on
``EVENTS_CHANNEL``, the dedupe of Akool's callbacks, and the short lease on delivering a job's
notifications."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.jobs.keys import JobKeys
from worker.lua import source


class Notices:
    def __init__(self, r: redis.Redis, keys: JobKeys, settings: Settings) -> None:
        self._r = r
        self._keys = keys
        self.s = settings
        self._unlock = r.register_script(source("delete_if_equals"))

    def publish(self, summary: dict[str, Any]) -> int:
        """Publish a final summary on ``EVENTS_CHANNEL``; returns the number of subscribers."""
        message = json.dumps(summary, separators=(",", ":"))
        return int(self._r.publish(self.s.events_channel, message))

    def first_callback(self, akool_id: str, status: AudioStatus, job_id: str, ttl: int) -> bool:
        """True the first time Akool calls back with ``status`` for ``akool_id``."""
        key = self._keys.webhook_seen(akool_id, int(status))
        return bool(self._r.set(key, job_id, nx=True, ex=ttl))

    def forget_callback(self, akool_id: str, status: AudioStatus) -> None:
        """Let the next callback for ``(akool_id, status)`` count as the first again."""
        self._r.delete(self._keys.webhook_seen(akool_id, int(status)))

    def lock_notify(self, job_id: str, ttl: float) -> str | None:
        """A short lease on delivering this job's notifications; None if someone holds it."""
        token = uuid.uuid4().hex
        key = self._keys.notify_lock(job_id)
        return token if self._r.set(key, token, nx=True, px=int(ttl * 1000)) else None

    def unlock_notify(self, job_id: str, token: str) -> None:
        self._unlock(keys=[self._keys.notify_lock(job_id)], args=[token])
