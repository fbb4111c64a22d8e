"""``/v1/schedules``: recurring jobs kept in Redis as RedBeat entries, over HTTP.

Thin views over :mod:`worker.maintenance.schedules`; JSON in and out, errors in the shape of
:mod:`worker.web.jsonerrors`. The app's token check covers these routes (worker/web/bearer.py).

- ``GET /v1/schedules``: every entry, the API's and those of ``RECURRING_JOBS_FILE`` and the
  beat configuration, each with ``source``, its last and next run.
- ``POST /v1/schedules`` ``{name, cron | every, task?, request, job_id}``: 201 with the entry;
  400 naming the bad field; 409 when the name is taken.
- ``GET /v1/schedules/<name>``: the entry, or 404.
- ``DELETE /v1/schedules/<name>``: 200 with the deleted entry; 404; 409 for an entry of the
  file or the beat configuration, which only changes there.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from celery import Celery
from flask import Blueprint, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from config.settings import Settings, get_settings
from worker.maintenance import schedules
from worker.web.jsonerrors import MESSAGES, ApiError

bp = Blueprint("schedules", __name__, url_prefix="/v1/schedules")

MAX_BODY = 64 * 1024


def _settings() -> Settings:
    given = current_app.config.get("SETTINGS")
    return given if isinstance(given, Settings) else get_settings()


def _beat() -> Celery:
    return schedules.beat_app(_settings())


def _body() -> Any:
    """The JSON object of the request, read as ``POST /v1/jobs`` reads its body."""
    if not request.is_json:
        raise ApiError(415, MESSAGES[415])
    request.max_content_length = MAX_BODY  # also without the app's MAX_CONTENT_LENGTH
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raise ApiError(413, MESSAGES[413]) from None
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


@bp.get("")
def list_schedules() -> Response:
    return jsonify({"schedules": [s.to_json() for s in schedules.list_all(_beat())]})


@bp.post("")
def add_schedule() -> tuple[Response, int, dict[str, str]]:
    try:
        made = schedules.add(_beat(), _settings(), _body())
    except schedules.InvalidSchedule as exc:
        raise ApiError(400, exc.message, exc.field) from None
    except schedules.ScheduleExists as exc:
        raise ApiError(409, str(exc), "name") from None
    location = url_for("schedules.get_schedule", name=made.name)
    return jsonify(made.to_json()), 201, {"Location": location}


@bp.get("/<name>")
def get_schedule(name: str) -> Response:
    try:
        return jsonify(schedules.get(_beat(), name).to_json())
    except schedules.InvalidSchedule as exc:
        raise ApiError(400, exc.message, exc.field) from None
    except schedules.ScheduleNotFound as exc:
        raise ApiError(404, str(exc), "name") from None


@bp.delete("/<name>")
def delete_schedule(name: str) -> Response:
    try:
        gone = schedules.remove(_beat(), name)
    except schedules.InvalidSchedule as exc:
        raise ApiError(400, exc.message, exc.field) from None
    except schedules.ScheduleNotFound as exc:
        raise ApiError(404, str(exc), "name") from None
    except schedules.NotRemovable as exc:
        raise ApiError(409, str(exc), "name") from None
    return jsonify({"deleted": gone.to_json()})
