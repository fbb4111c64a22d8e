"""The body of ``POST /v1/schedules`` for the OpenAPI document, typed as
:func:`worker.maintenance.schedules.parse_spec` reads it: one variant per task and timing (cron or
every), the request one of the task's job variants without ``kind`` and ``job_id``.

Two things are said more narrowly than the service takes them, so a body the document allows is
always taken: ``cron`` in its numeric form (Celery's crontab also reads day and month names and
wrapping ranges such as ``22-2``), and the job id template at most 60 characters with two
placeholders, one ``{name}`` at most (the service renders it and checks the result).
tests/unit/test_openapi_agreement.py checks both ways against the service.
"""

from __future__ import annotations

from typing import Any

from worker.akool.requestschema import END
from worker.maintenance.recurring import _NAME, PLACEHOLDERS
from worker.maintenance.schedules import MAX_EVERY

_STEP = r"(/[1-9][0-9]{0,3})?"


def _cron_field(number: str) -> str:
    item = rf"(\*{_STEP}|{number}-{number}{_STEP}|{number})"
    return rf"{item}(,{item})*"


#: minute, hour, day of month, month, day of week: the numbers Celery's crontab takes.
CRON_PATTERN = (
    "^"
    + " ".join(
        _cron_field(n)
        for n in (
            "([0-9]|[1-5][0-9])",
            "([0-9]|1[0-9]|2[0-3])",
            "([1-9]|[12][0-9]|3[01])",
            "([1-9]|1[0-2])",
            "[0-6]",
        )
    )
    + END
)
_PLACEHOLDER = r"\{(" + "|".join(PLACEHOLDERS) + r")\}"
TEMPLATE_PATTERN = (
    rf"^(?=.{{1,60}}{END})(?!.*\.\.)(?!(.*\{{){{3}})(?!.*\{{name\}}.*\{{name\}})"
    rf"([A-Za-z0-9]|{_PLACEHOLDER})([A-Za-z0-9_.-]|{_PLACEHOLDER})*{END}"
)
NAME_PATTERN = _NAME.pattern.removesuffix(r"\Z") + END


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def schedule_schemas(min_every: float) -> dict[str, Any]:
    """``ScheduleSpec`` (the body), its four variants and ``ScheduleCron``; ``min_every`` is
    the service's shortest interval (twice BEAT_MAX_LOOP_INTERVAL)."""
    every = {
        "type": "number",
        "minimum": min_every,
        "maximum": MAX_EVERY,
        "description": "seconds between runs (at least twice BEAT_MAX_LOOP_INTERVAL)",
    }
    timings: dict[str, tuple[dict[str, Any], str]] = {
        "Cron": ({"cron": _ref("ScheduleCron"), "every": {"type": "null"}}, "cron"),
        "Every": ({"every": every, "cron": {"type": "null"}}, "every"),
    }
    variants: dict[str, Any] = {}
    for task in ("create", "clone"):
        for timing, (fields, needed) in timings.items():
            task_field: dict[str, Any] = {"const": f"audio.{task}"}
            if task == "create":
                task_field["description"] = "audio.create when omitted"
            variants[f"Schedule{task.title()}{timing}"] = {
                "type": "object",
                "additionalProperties": False,
                "required": [
                    "name",
                    needed,
                    "request",
                    "job_id",
                    *(["task"] if task == "clone" else []),
                ],
                "properties": {
                    "name": {"type": "string", "pattern": NAME_PATTERN},
                    **fields,
                    "task": task_field,
                    "request": _ref(f"Scheduled{task.title()}Request"),
                    "job_id": {
                        "type": "string",
                        "pattern": TEMPLATE_PATTERN,
                        "description": "the job id template: "
                        + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS),
                    },
                },
            }
    return {
        "ScheduleSpec": {
            "oneOf": [_ref(name) for name in variants],
            "description": "a recurring job: its name, cron or every, the task (audio.create "
            "by default), its request and a job id template",
        },
        **variants,
        "ScheduleCron": {
            "type": "string",
            "pattern": CRON_PATTERN,
            "description": "minute hour day-of-month month day-of-week, UTC, numeric",
        },
    }
