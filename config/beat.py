"""Beat schedules (RedBeat): each interval is a setting; recurring jobs come from a file.

``celery -A worker beat`` uses ``redbeat.RedBeatScheduler`` (config/celery.py): the schedule
lives in Redis and a lock makes any second beat a standby, so no entry fires twice. Set
``RECURRING_JOBS_FILE`` on the beat process only: workers never read it, because each beat entry
carries its job's whole spec in its kwargs.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from celery.schedules import crontab, schedule
from celery.signals import before_task_publish

from config.celery import QUEUE_AUDIO
from config.settings import Settings
from worker import recurring

RECURRING_TASK = "maintenance.recurring"


def _every(seconds: float) -> schedule:
    return schedule(timedelta(seconds=seconds))


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def entry(task: str, every: float) -> dict[str, Any]:
        # A maintenance message older than its interval is superseded by the next one.
        return {
            "task": task,
            "schedule": _every(every),
            "options": {"queue": QUEUE_AUDIO, "expires": max(1.0, every)},
        }

    entries = {
        "sweep": entry("maintenance.sweep", settings.sweep_interval),
        "voices": entry("maintenance.refresh_voices", settings.voice_refresh_interval),
        "purge": entry("maintenance.purge", settings.purge_interval),
    }
    if settings.recurring_jobs_file is not None:
        for job in recurring.load(settings.recurring_jobs_file, settings):
            sched = crontab(*job.cron.split()) if job.cron else _every(job.every or 0)
            entries[f"recurring:{job.name}"] = {
                "task": RECURRING_TASK,
                "schedule": sched,
                "kwargs": {
                    "name": job.name,
                    "task": job.task,
                    "request": job.request,
                    "job_id": job.job_id,
                },
                "options": {"queue": QUEUE_AUDIO},
            }
    return entries


@before_task_publish.connect(sender=RECURRING_TASK, weak=False)
def _stamp_fired_at(body: Any = None, **_: Any) -> None:
    """Stamp the time beat fired a recurring entry into its kwargs, once per message.

    The worker renders the job id from it, so a redelivered message renders the same id.
    """
    if isinstance(body, tuple | list) and len(body) > 1 and isinstance(body[1], dict):
        body[1].setdefault("fired_at", time.time())  # a retry keeps its first stamp
