"""``akool-audio schedule add|list|rm``: recurring jobs kept in Redis (RedBeat), which every
running beat picks up without a restart. Plain calls of :mod:`worker.maintenance.schedules`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import redis
from celery import Celery

from config.settings import get_settings
from worker.maintenance import schedules
from worker.services import Unavailable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2  # as worker/cli/main.py; Unavailable exits 3
SHORTCUTS = ("input_text", "voice_id", "voice_url", "rate", "notify_url")


@contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise Unavailable(
            f"cannot reach Redis at {get_settings().redacted()['REDIS_URL']} ({exc}).\n"
            "Start one with `redis-server` or set REDIS_URL to the one beat uses."
        ) from None


def _beat() -> Celery:
    return schedules.beat_app(get_settings())


def _request(args: argparse.Namespace) -> dict[str, Any] | None:
    """``--request`` JSON, then the shortcut options over it; None (after a message) when the
    JSON is not an object."""
    request: Any = {}
    if args.request is not None:
        try:
            request = json.loads(args.request)
        except ValueError as exc:
            print(f"error: --request is not JSON: {exc}", file=sys.stderr)
            return None
        if not isinstance(request, dict):
            print("error: --request must be a JSON object of the task's kwargs", file=sys.stderr)
            return None
    for name in SHORTCUTS:
        value = getattr(args, name, None)
        if value is not None:
            request[name] = value
    return dict(request)


def cmd_add(args: argparse.Namespace) -> int:
    request = _request(args)
    if request is None:
        return EXIT_USAGE
    spec: dict[str, Any] = {
        "name": args.name,
        "task": args.task,
        "request": request,
        "job_id": args.job_id,
    }
    if args.cron is not None:
        spec["cron"] = args.cron
    else:
        spec["every"] = args.every
    try:
        with _redis_errors():
            made = schedules.add(_beat(), get_settings(), spec, trusted=True)
    except schedules.InvalidSchedule as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except schedules.ScheduleExists as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(made.to_json(), indent=2, sort_keys=True))
    return EXIT_OK


def _when(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M:%S")


def _table(rows: list[schedules.Schedule], out: Callable[[str], None]) -> None:
    def every(s: schedules.Schedule) -> str:
        if s.cron is not None:
            return f"cron {s.cron}"
        return f"every {s.every:g}s" if s.every is not None else "-"

    cells = [("NAME", "SOURCE", "SCHEDULE", "LAST (UTC)", "NEXT (UTC)")]
    cells += [
        (s.name, s.source, every(s), _when(s.last_run_at), _when(s.next_run_at)) for s in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    for row in cells:
        out("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[4]]))


def cmd_list(args: argparse.Namespace) -> int:
    with _redis_errors():
        rows = schedules.list_all(_beat())
    if args.json:
        print(json.dumps([s.to_json() for s in rows], indent=2, sort_keys=True))
    elif rows:
        _table(rows, print)
    else:
        print("no schedules (file and maintenance entries appear once beat has run)")
    return EXIT_OK


def cmd_rm(args: argparse.Namespace) -> int:
    try:
        with _redis_errors():
            gone = schedules.remove(_beat(), args.name)
    except schedules.InvalidSchedule as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except (schedules.ScheduleNotFound, schedules.NotRemovable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"removed schedule {gone.name}")
    return EXIT_OK
