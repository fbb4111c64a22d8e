"""Beat schedules (RedBeat): the maintenance entries, each interval a setting.

``celery -A worker beat`` uses ``redbeat.RedBeatScheduler`` (config/celeryconfig.py): the schedule
lives in Redis and a lock makes any second beat a standby, so no entry fires twice. Recurring
jobs from ``RECURRING_JOBS_FILE`` are added by :mod:`worker.maintenance.recurring`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery.schedules import schedule

from config.celeryconfig import QUEUE_AUDIO
from config.settings import Settings


def every(seconds: float) -> schedule:
    return schedule(timedelta(seconds=seconds))


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def entry(task: str, seconds: float) -> dict[str, Any]:
        # A maintenance message older than its interval is superseded by the next one.
        return {
            "task": task,
            "schedule": every(seconds),
            "options": {"queue": QUEUE_AUDIO, "expires": max(1.0, seconds)},
        }

    return {
        "sweep": entry("maintenance.sweep", settings.sweep_interval),
        "voices": entry("maintenance.refresh_voices", settings.voice_refresh_interval),
        "purge": entry("maintenance.purge", settings.purge_interval),
    }
