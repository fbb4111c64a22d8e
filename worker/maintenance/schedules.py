"""Schedules kept in Redis as RedBeat entries: added, listed and removed while beat runs.

A schedule made here is the same beat entry as a job of ``RECURRING_JOBS_FILE``
(:func:`worker.maintenance.recurring.beat_entries`): it fires ``maintenance.recurring`` on the
``audio`` queue with kwargs ``{name, task, request, job_id}``, and the worker renders the job id
from the time beat fired it, so each firing is idempotent. Only the entry name differs:

=====================  ===============  ==========================================
entry name             source           changed through
=====================  ===============  ==========================================
``schedule:<name>``    ``api``          these functions (HTTP API, command line)
``recurring:<name>``   ``file``         ``RECURRING_JOBS_FILE``, then restart beat
``sweep`` ...          ``maintenance``  config/beat.py and its ``*_INTERVAL`` settings
=====================  ===============  ==========================================

Every beat reads the schedule (a sorted set of entry keys by due time) from Redis on each tick, so
an entry saved here fires without a restart, and one deleted here stops. A beat only ever
rewrites the entries of its own configuration (RedBeat's ``{prefix}:statics`` set), never these.
Names are unique across the three sources, so ``get``/``remove`` take the bare name; adds and
removes take a short Redis lock (``{prefix}:edit``) so two adds of one name cannot both succeed.

A new schedule first fires one interval after it was added (or at the next time its cron
expression matches), as Celery's own beat does; RedBeat alone would fire it at once.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

from celery import Celery
from celery.schedules import crontab, schedule
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis

from config.beat import every as interval
from config.celeryconfig import QUEUE_AUDIO, celery_config
from config.settings import Settings
from worker.jobs.request import (
    ALLOWED,
    CELERY_ONLY,
    InvalidRequest,
    parse_http_request,
    parse_job_id,
    parse_request,
)
from worker.maintenance.recurring import (
    _NAME,  # the file's rules are the API's rules
    _TASKS,
    PLACEHOLDERS,
    RECURRING_TASK,
    Recurring,
    cron_schedule,
    render_job_id,
)

API_PREFIX = "schedule:"
FILE_PREFIX = "recurring:"
FIELDS = ("name", "cron", "every", "task", "request", "job_id")
MAX_EVERY = 366 * 86400.0
Source = Literal["api", "file", "maintenance"]
_SOURCE_ORDER = {"api": 0, "file": 1, "maintenance": 2}


class InvalidSchedule(ValueError):
    """Raised when a schedule's spec is invalid; ``field`` names the first bad one."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ScheduleExists(ValueError):
    """Raised when a schedule of that name exists already (from any source)."""


class ScheduleNotFound(KeyError):
    """Raised when no schedule has that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such schedule"


class NotRemovable(ValueError):
    """Raised when a schedule comes from a file or the beat configuration, not from the API."""


@dataclass(frozen=True)
class Schedule:
    """One beat entry as operators see it."""

    name: str
    entry: str  # RedBeat's entry name
    source: Source
    task: str  # audio.create / audio.clone; a maintenance task's own name
    cron: str | None
    every: float | None
    request: dict[str, Any] | None
    job_id: str | None  # the template
    last_run_at: datetime | None
    next_run_at: datetime | None
    runs: int

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "entry": self.entry,
            "source": self.source,
            "cron": self.cron,
            "every": self.every,
            "task": self.task,
            "request": self.request,
            "job_id": self.job_id,
            "last_run_at": _iso(self.last_run_at),
            "next_run_at": _iso(self.next_run_at),
            "runs": self.runs,
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds")


@lru_cache(maxsize=4)
def beat_app(settings: Settings) -> Celery:
    """A Celery app that carries the RedBeat settings, for a process that edits schedules
    without being beat (the web service, the command line): it reads no ``RECURRING_JOBS_FILE``
    and imports no task."""
    app = Celery("akool_audio_schedules", set_as_current=False)
    app.conf.update(celery_config(settings))
    ensure_conf(app)
    return app


def min_every(settings: Settings) -> float:
    """The shortest interval a schedule may have: twice ``BEAT_MAX_LOOP_INTERVAL`` (10 s by
    default), so a typo cannot fire a paid job every second."""
    return 2 * settings.beat_max_loop_interval


def parse_spec(spec: Any, settings: Settings, *, trusted: bool = False) -> Recurring:
    """Validate a schedule as the API and the command line receive it. The request is checked by
    :func:`worker.jobs.request.parse_http_request`, as a job of ``POST /v1/jobs`` is (same
    messages), and the job id template by rendering it at its longest. ``trusted`` (the
    command line, whose user holds the broker's address anyway) also allows the Celery-only
    options ``notify_task`` and ``notify_queue``."""
    if not isinstance(spec, Mapping):
        raise InvalidSchedule(None, "the schedule must be a JSON object")
    unknown = sorted(str(k) for k in set(spec) - set(FIELDS))
    if unknown:
        raise InvalidSchedule(
            unknown[0],
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidSchedule("name", "name must be 1-64 letters, digits, '-' or '_'")
    cron, every = spec.get("cron"), spec.get("every")
    if (cron is None) == (every is None):
        raise InvalidSchedule("cron", "give exactly one of cron or every")
    seconds = None if every is None else _every(every, settings)
    if cron is not None:
        if not isinstance(cron, str):
            raise InvalidSchedule("cron", f"cron must be a string, got {type(cron).__name__}")
        try:
            cron_schedule(cron)
        except ValueError as exc:
            raise InvalidSchedule("cron", f"bad cron {cron!r}: {exc}") from None
        cron = " ".join(cron.split())
    task = spec.get("task", "audio.create")
    if not isinstance(task, str) or task not in _TASKS:
        raise InvalidSchedule("task", f"task must be one of {', '.join(_TASKS)}, got {task!r}")
    request = spec.get("request")
    if not isinstance(request, dict):
        raise InvalidSchedule("request", "request must be an object of the task's kwargs")
    if "job_id" in request:
        raise InvalidSchedule("request.job_id", "put the job id template in job_id, not in request")
    # null is absent, as in a body of POST /v1/jobs (and a null Celery-only option is refused
    # there too, so it is kept here for the same refusal).
    known = ALLOWED[_TASKS[task]] - (set() if trusted else set(CELERY_ONLY))
    request = {k: v for k, v in request.items() if v is not None or k not in known}
    parse = parse_request if trusted else parse_http_request
    try:
        parse(_TASKS[task], request, settings)
    except InvalidRequest as exc:
        raise InvalidSchedule(f"request.{exc.field}", str(exc)) from None
    template = _template(spec.get("job_id"), name)
    return Recurring(name, task, request, template, cron, seconds)


def _every(every: Any, settings: Settings) -> float:
    if isinstance(every, bool) or not isinstance(every, int | float):
        raise InvalidSchedule("every", f"every must be a number of seconds, got {every!r}")
    low = min_every(settings)
    if not (math.isfinite(every) and low <= every <= MAX_EVERY):
        raise InvalidSchedule(
            "every",
            f"every must be {low:g} to {MAX_EVERY:.0f} seconds (at least twice "
            f"BEAT_MAX_LOOP_INTERVAL, at most a year), got {every!r}",
        )
    return float(every)


def _template(template: Any, name: str) -> str:
    if not isinstance(template, str):
        raise InvalidSchedule("job_id", "job_id must be a template such as 'daily-news-{date}'")
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:  # "{" alone
        raise InvalidSchedule("job_id", f"job_id is not a valid template: {exc}") from None
    if used - set(PLACEHOLDERS):
        raise InvalidSchedule(
            "job_id", f"job_id may use {{{'}, {'.join(PLACEHOLDERS)}}}, got {template!r}"
        )
    try:
        parse_job_id(render_job_id(template, name, 4102444799.0))  # the longest rendering
    except InvalidRequest as exc:
        raise InvalidSchedule("job_id", str(exc)) from None
    except ValueError as exc:  # "{date!x}", "{ts:q}"
        raise InvalidSchedule("job_id", f"job_id is not a valid template: {exc}") from None
    return template


def _source(entry: str) -> tuple[Source, str]:
    if entry.startswith(API_PREFIX):
        return "api", entry.removeprefix(API_PREFIX)
    if entry.startswith(FILE_PREFIX):
        return "file", entry.removeprefix(FILE_PREFIX)
    return "maintenance", entry


def _describe(sched: Any) -> tuple[str | None, float | None]:
    """(cron expression in the usual field order, interval seconds) of a beat schedule."""
    if isinstance(sched, crontab):
        parts = (
            sched._orig_minute,
            sched._orig_hour,
            sched._orig_day_of_month,
            sched._orig_month_of_year,
            sched._orig_day_of_week,
        )
        return " ".join(str(p) for p in parts), None
    if isinstance(sched, schedule):
        return None, sched.run_every.total_seconds()
    return None, None


def _next_run(sched: Any, last: datetime | None, now: datetime) -> datetime | None:
    """When beat fires the entry next: ``now`` when it is due (or never ran: RedBeat fires
    such an entry at once)."""
    if last is None:
        return now
    try:
        if isinstance(sched, crontab):
            start, delta, _ = sched.remaining_delta(last)
            due: datetime = start + delta
        elif isinstance(sched, schedule):
            due = sched.maybe_make_aware(last) + sched.run_every
        else:
            due = now + sched.remaining_estimate(last)
    except (AttributeError, TypeError, ValueError):
        return None
    return max(due, now)


def _view(app: Celery, definition: str, meta: str | None) -> Schedule:
    """A schedule from an entry's stored hash fields, read as ``RedBeatSchedulerEntry.from_key``
    reads them."""
    d = RedBeatSchedulerEntry.decode_definition(definition)
    m = RedBeatSchedulerEntry.decode_meta(meta)
    entry = RedBeatSchedulerEntry(app=app, **{**d, **m})
    source, name = _source(entry.name)
    kwargs = entry.kwargs if isinstance(entry.kwargs, dict) else {}
    cron, every = _describe(entry.schedule)
    task, request, template = entry.task, None, None
    if source != "maintenance" and {"task", "request", "job_id"} <= set(kwargs):
        task, request, template = kwargs["task"], kwargs["request"], kwargs["job_id"]
    # Meta without a run count is the last_run_at an entry was saved with, not a run.
    runs = int(m.get("total_run_count") or 0)
    last = m.get("last_run_at")
    return Schedule(
        name=name,
        entry=entry.name,
        source=source,
        task=str(task),
        cron=cron,
        every=every,
        request=request,
        job_id=template,
        last_run_at=last if runs else None,
        next_run_at=_next_run(entry.schedule, last, app.now()),
        runs=runs,
    )


def _key(app: Celery, entry: str) -> str:
    return str(RedBeatSchedulerEntry.generate_key(app, entry))


def _candidates(name: str) -> list[str]:
    """The entry names ``name`` may stand for, the API's first."""
    return [API_PREFIX + name, FILE_PREFIX + name, name]


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidSchedule("name", "name must be 1-64 letters, digits, '-' or '_'")


def _read(app: Celery, keys: list[str]) -> list[Schedule]:
    """The schedules stored under ``keys``, in their order, in one round trip. A key without
    a definition is skipped: beat writes a deleted entry's run time back when the delete
    raced its tick, and drops the key from the schedule on its next one."""
    with get_redis(app).pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key, "definition", "meta")
        rows = pipe.execute()
    return [_view(app, definition, meta) for definition, meta in rows if definition]


def list_all(app: Celery) -> list[Schedule]:
    """Every entry in Redis (the API's, the file's and the maintenance ones, as far as a beat
    has stored them), the API's first, each by name. Two round trips."""
    keys = get_redis(app).zrange(app.redbeat_conf.schedule_key, 0, -1)
    return sorted(_read(app, keys), key=lambda s: (_SOURCE_ORDER[s.source], s.name))


def get(app: Celery, name: str) -> Schedule:
    """The schedule called ``name`` (its bare name, as :func:`list_all` shows it)."""
    _check_name(name)
    found = _read(app, [_key(app, e) for e in _candidates(name)])
    if not found:
        raise ScheduleNotFound(f"no schedule named {name!r}")
    return found[0]


def add(app: Celery, settings: Settings, spec: Any, *, trusted: bool = False) -> Schedule:
    """Validate ``spec`` and save it as the RedBeat entry ``schedule:<name>``; every running
    beat picks it up on its next tick. ``trusted``: see :func:`parse_spec` (False over HTTP).
    Raises InvalidSchedule, ScheduleExists."""
    job = parse_spec(spec, settings, trusted=trusted)
    sched = cron_schedule(job.cron) if job.cron else interval(job.every or 0)
    entry = RedBeatSchedulerEntry(
        API_PREFIX + job.name,
        RECURRING_TASK,
        sched,
        kwargs={"name": job.name, "task": job.task, "request": job.request, "job_id": job.job_id},
        options={"queue": QUEUE_AUDIO},
        last_run_at=app.now(),  # the first run comes one interval later (see the docstring)
        app=app,
    )
    r = get_redis(app)
    # One editor at a time, so two adds of one name cannot both pass the check.
    with r.lock(app.redbeat_conf.key_prefix + ":edit", timeout=10, blocking_timeout=10):
        for existing in _candidates(job.name):
            if r.hexists(_key(app, existing), "definition"):
                raise ScheduleExists(
                    f"a schedule named {job.name!r} exists already "
                    f"(source {_source(existing)[0]}); remove it first or pick another name"
                )
        # A beat that fired a deleted entry during its tick wrote its run time back: drop it.
        r.delete(entry.key)
        entry.save()
    return get(app, job.name)


def remove(app: Celery, name: str) -> Schedule:
    """Delete the API's schedule ``name``; beats stop firing it from their next tick (a firing
    already under way when it is deleted is still sent). Raises ScheduleNotFound, and
    NotRemovable for an entry of the file or the beat configuration."""
    found = get(app, name)
    if found.source == "file":
        raise NotRemovable(
            f"schedule {name!r} comes from RECURRING_JOBS_FILE: change it in that file and "
            "restart beat"
        )
    if found.source == "maintenance":
        raise NotRemovable(
            f"schedule {name!r} comes from the beat configuration (config/beat.py and its "
            "*_INTERVAL settings): change it there and restart beat"
        )
    r = get_redis(app)
    with r.lock(app.redbeat_conf.key_prefix + ":edit", timeout=10, blocking_timeout=10):
        RedBeatSchedulerEntry(found.entry, app=app).delete()
    return found
