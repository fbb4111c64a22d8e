"""Recurring audio jobs declared in a file (``RECURRING_JOBS_FILE``, YAML or JSON).

```yaml
jobs:
  - name: daily-news                 # letters, digits, '-' and '_'
    cron: "0 7 * * *"                # minute hour day-of-month month day-of-week (UTC)
    # every: 3600                    # ... or an interval in seconds, not both
    job_id: "daily-news-{date}"      # one job per date: a second run the same day attaches
    task: audio.create               # or audio.clone; default audio.create
    request: {input_text: "Good morning.", voice_id: "...", notify_url: "https://..."}
```

Beat fires one entry per job; the worker renders ``job_id`` from the time beat fired it
(``{name}``, ``{date}`` 2026-01-31, ``{hour}`` 2026-01-31T07, ``{minute}`` 2026-01-31T0705,
``{ts}`` epoch seconds) and enqueues the task. The same message run twice renders the same id,
and the job id makes the run idempotent: it never submits twice.
"""

from __future__ import annotations

import re
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml  # PyYAML: JSON is YAML too, so one parser reads both
from celery.schedules import crontab
from celery.signals import before_task_publish

from config.beat import every
from config.celeryconfig import QUEUE_AUDIO
from config.settings import Settings, SettingsError
from worker.jobs.request import InvalidRequest, parse_job_id, parse_request

RECURRING_TASK = "maintenance.recurring"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
_FIELDS = {"name", "cron", "every", "job_id", "task", "request"}
_TASKS = {"audio.create": "create", "audio.clone": "clone"}
PLACEHOLDERS = ("name", "date", "hour", "minute", "ts")


@dataclass(frozen=True)
class Recurring:
    name: str
    task: str
    request: dict[str, Any]
    job_id: str  # the template
    cron: str | None
    every: float | None


def render_job_id(template: str, name: str, fired_at: float) -> str:
    t = datetime.fromtimestamp(fired_at, UTC)
    return template.format(
        name=name,
        date=t.strftime("%Y-%m-%d"),
        hour=t.strftime("%Y-%m-%dT%H"),
        minute=t.strftime("%Y-%m-%dT%H%M"),
        ts=int(fired_at),
    )


def cron_schedule(expr: str) -> crontab:
    """A crontab from ``minute hour day-of-month month day-of-week`` (UTC). Raises ValueError.

    Not ``crontab(*expr.split())``: crontab's positional order is minute, hour, day-of-week,
    day-of-month, month."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"must have 5 fields (m h dom mon dow), got {expr!r}")
    minute, hour, dom, month, dow = fields
    return crontab(minute=minute, hour=hour, day_of_month=dom, month_of_year=month, day_of_week=dow)


def _fail(where: str, message: str) -> SettingsError:
    return SettingsError(f"RECURRING_JOBS_FILE {where}: {message}")


def _one(i: int, item: Any, settings: Settings) -> Recurring:
    where = f"jobs[{i}]"
    if not isinstance(item, dict):
        raise _fail(where, "must be a mapping")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise _fail(where, f"unknown field(s) {', '.join(unknown)}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise _fail(where, "name must be 1-64 letters, digits, '-' or '_'")
    where = f"job {name!r}"
    cron, every = item.get("cron"), item.get("every")
    if (cron is None) == (every is None):
        raise _fail(where, "give exactly one of cron or every")
    if cron is not None and (not isinstance(cron, str) or len(cron.split()) != 5):
        raise _fail(where, f"cron must have 5 fields (m h dom mon dow), got {cron!r}")
    if every is not None and (
        isinstance(every, bool) or not isinstance(every, int | float) or every <= 0
    ):
        raise _fail(where, f"every must be a positive number of seconds, got {every!r}")
    task = item.get("task", "audio.create")
    if task not in _TASKS:
        raise _fail(where, f"task must be one of {', '.join(_TASKS)}, got {task!r}")
    request = item.get("request")
    if not isinstance(request, dict):
        raise _fail(where, "request must be a mapping of the task's kwargs")
    if "job_id" in request:
        raise _fail(where, "put the job id template in job_id, not in request")
    template = item.get("job_id")
    if not isinstance(template, str):
        raise _fail(where, "job_id must be a template such as 'daily-news-{date}'")
    used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if used - set(PLACEHOLDERS):
        raise _fail(where, f"job_id may use {{{'}, {'.join(PLACEHOLDERS)}}}, got {template!r}")
    try:
        parse_request(_TASKS[task], request, settings)
        parse_job_id(render_job_id(template, name, 4102444799.0))  # the longest rendering
    except (InvalidRequest, ValueError) as exc:
        raise _fail(where, str(exc)) from None
    if cron is not None:
        try:
            cron_schedule(cron)
        except ValueError as exc:
            raise _fail(where, f"bad cron {cron!r}: {exc}") from None
    return Recurring(name, task, request, template, cron, None if every is None else float(every))


def load(path: Path, settings: Settings) -> list[Recurring]:
    """Parse and validate the file; any problem raises SettingsError naming the job."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(str(path), f"cannot be read ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _fail(str(path), f"is not valid YAML or JSON: {exc}") from None
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise _fail(str(path), "must be a mapping with a list under 'jobs'")
    out = [_one(i, item, settings) for i, item in enumerate(jobs)]
    names = [r.name for r in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(str(path), f"duplicate name(s) {', '.join(dupes)}")
    return out


def beat_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """One beat entry per recurring job of ``RECURRING_JOBS_FILE`` (none without it). Set it on
    the beat process only: workers never read it, because each entry carries its job's whole
    spec in its kwargs."""
    if settings.recurring_jobs_file is None:
        return {}
    entries: dict[str, dict[str, Any]] = {}
    for job in load(settings.recurring_jobs_file, settings):
        sched = cron_schedule(job.cron) if job.cron else every(job.every or 0)
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
