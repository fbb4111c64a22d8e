"""The ``/v1`` jobs API: thin views over :mod:`worker.web.intake`, the job store and
``tasks.control``. Every answer is JSON; errors are ``{"error": {"code", "message", "field"}}``
(:mod:`worker.web.jsonerrors`). The token check is the app's (:mod:`worker.web.bearer`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, NoReturn

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import PathConverter

from config.settings import SettingsError
from tasks import control
from worker.akool import AkoolClient
from worker.akool.audiorequest import LEGACY_API
from worker.akool.speech import speech_api
from worker.fleet import voicecache
from worker.jobs import Job, JobConflict, JobNotFound, JobState
from worker.jobs.record import StaleAttempt, WrongState
from worker.jobs.request import InvalidRequest, is_job_id
from worker.pipeline import result_summary
from worker.web import follow, intake, openapi
from worker.web.deps import Deps, deps
from worker.web.jsonerrors import ApiError, ErrorCode

bp = Blueprint("api", __name__, url_prefix="/v1")


class AnyId(PathConverter):
    """Whatever the path holds, ``/``, CR and LF too: the view judges it (400 for a bad id)
    instead of the router answering 404 for an id it cannot match."""

    regex = r"[^/][\s\S]*?"


@bp.record_once
def _converters(state: BlueprintSetupState) -> None:
    state.app.url_map.converters["anyid"] = AnyId


DEFAULT_LIMIT, MAX_LIMIT = 50, 200
LIST_PARAMS = ("state", "q", "limit", "cursor", "batch")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,128}\Z")
_CURSOR = re.compile(r"^[A-Za-z0-9_=-]{1,512}\Z")
_ACTIONS = ("/cancel", "/retry")
WRONG_STATE = {"cancel": ErrorCode.NOT_CANCELLABLE, "retry": ErrorCode.NOT_RETRYABLE}


def _bad(field: str, message: str) -> NoReturn:
    raise ApiError(400, message if message.startswith(field) else f"{field}: {message}", field)


def _json(doc: dict[str, Any], status: int = 200, location: str | None = None) -> Response:
    response = jsonify(doc)
    response.status_code = status
    if location is not None:
        response.headers["Location"] = location
    return response


def links(job_id: str) -> dict[str, str]:
    base = f"/v1/jobs/{job_id}"
    return {"self": base, "cancel": f"{base}/cancel", "retry": f"{base}/retry"}


def _job_or_404(d: Deps, job_id: str) -> Job:
    if not is_job_id(job_id):
        _bad("job_id", f"is not a job id: {job_id[:60]!r}")
    job = d.jobs.find(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}", "job_id")
    return job


def _summary(d: Deps, job: Job) -> dict[str, Any]:
    return result_summary(d.store, d.settings.download_url_ttl, job)


def detail(d: Deps, job: Job) -> dict[str, Any]:
    """The summary with a fresh download link, plus what a person looking at the job needs."""
    return {
        **_summary(d, job),
        "kind": job.kind,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "submitted_at": job.submitted_at,
        "completed_at": job.completed_at,
        "deadline_at": job.deadline_at,
        "cancel_requested_at": job.cancel_requested_at,
        "polls": job.polls,
        "attempt": job.attempt,
        "attempts": list(job.attempts),
        "akool_status": None if job.akool_status is None else int(job.akool_status),
        "error_code": job.error_code,
        "storage_error": job.storage_error,
        "notify_state": None if job.notify_state is None else job.notify_state.value,
        "notify_task_state": (
            None if job.notify_task_state is None else job.notify_task_state.value
        ),
    }


def row(job: Job) -> dict[str, Any]:
    """One compact line of the job list."""
    voice = job.request.get("voice_id") or job.request.get("voice_url")
    duration = None if job.completed_at is None else round(job.completed_at - job.created_at, 3)
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "state": job.state.value,
        "voice": voice,
        "created_at": job.created_at,
        "completed_at": job.completed_at,
        "polls": job.polls,
        "attempt": job.attempt,
        "error_code": job.error_code,
        "duration": duration,
    }


def _body() -> Any:
    if not request.is_json:
        raise ApiError(415, "send JSON with Content-Type: application/json")
    raw = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413 before reading
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not JSON") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


@bp.post("/jobs")
def create_job() -> Response:
    d = deps()
    try:
        got = intake.submit(d, _body())
    except InvalidRequest as exc:
        raise ApiError(400, str(exc), exc.field) from None
    except JobConflict as exc:
        raise ApiError(409, str(exc), "job_id", code=ErrorCode.JOB_ID_CONFLICT) from None
    doc: dict[str, Any] = {
        "job_id": got.job_id,
        "state": got.state.value,
        "links": links(got.job_id),
    }
    if not got.created:
        doc["message"] = "this job_id exists with the same request; nothing was sent again"
    return _json(doc, 202 if got.created else 200, location=links(got.job_id)["self"])


def _one(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        _bad(name, "give it once")
    return values[0] if values and values[0] != "" else None


@bp.get("/jobs")
def list_jobs() -> Response:
    unknown = sorted(k for k in request.args if k not in LIST_PARAMS)
    if unknown:
        _bad(unknown[0][:60], f"unknown parameter; use {', '.join(LIST_PARAMS)}")
    state, prefix, raw_limit, cursor, batch = (_one(p) for p in LIST_PARAMS)
    states = [s.value for s in JobState]
    if state is not None and state not in states:
        _bad("state", f"must be one of {', '.join(states)}")
    if prefix is not None and not _PREFIX.match(prefix):
        _bad("q", "a job id prefix: 1-128 letters, digits, '_', '-' or '.'")
    limit = DEFAULT_LIMIT
    if raw_limit is not None:
        if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 4:
            _bad("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        limit = int(raw_limit)
        if not 1 <= limit <= MAX_LIMIT:
            _bad("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
    if cursor is not None and not _CURSOR.match(cursor):
        _bad("cursor", "is not one this service gave out")
    if batch is not None and not is_job_id(batch):
        _bad("batch", "is not a batch id")
    try:
        page = deps().jobs.page(state=state, prefix=prefix, limit=limit, cursor=cursor, batch=batch)
    except ValueError as exc:
        field = str(exc).split(" ", 1)[0]
        _bad(field if field in LIST_PARAMS else "cursor", str(exc))
    return _json({"jobs": [row(j) for j in page.jobs], "next_cursor": page.next_cursor})


@bp.get("/jobs/<anyid:job_id>")
def get_job(job_id: str) -> Response:
    if job_id.endswith(_ACTIONS):
        raise MethodNotAllowed(valid_methods=["POST"])
    d = deps()
    job = follow.held(d, _job_or_404(d, job_id))  # ?wait=N
    return follow.conditional(
        {
            "job": detail(d, job),
            "request": job.request,
            "timeline": d.jobs.timeline.events(job.job_id),
        }
    )


def expected_attempt() -> int | None:
    """``expected_attempt`` from the query or a JSON body ``{"expected_attempt": N}`` (no body
    at all is fine): the attempt the caller saw, so that a stale view acts on nothing."""
    raw: Any = _one("expected_attempt")
    unknown = sorted(k for k in request.args if k != "expected_attempt")
    if unknown:
        _bad(unknown[0][:60], "unknown parameter; use expected_attempt")
    if request.get_data().strip():  # no body, or an empty one, says nothing
        body = _body()
        if not isinstance(body, dict):
            _bad("body", "must be a JSON object")
        extra = sorted(k for k in body if k != "expected_attempt")
        if extra:
            _bad(str(extra[0])[:60], "unknown field; use expected_attempt")
        if "expected_attempt" in body:
            if raw is not None:
                _bad("expected_attempt", "give it once, in the query or the body")
            raw = body["expected_attempt"]
    if raw is None:
        return None
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 6:
        raw = int(raw)
    if type(raw) is not int or not 1 <= raw <= 999_999:
        _bad("expected_attempt", "must be a whole number from 1 (the job's attempt)")
    return int(raw)


def _post_only() -> Response:
    """OPTIONS of cancel and retry: POST alone (Flask's own answer would add the GET of
    ``/jobs/<anyid>``, whose id can end in /cancel; that GET answers 405)."""
    return Response(status=204, headers={"Allow": "POST, OPTIONS"})


@bp.route("/jobs/<anyid:job_id>/cancel", methods=["POST", "OPTIONS"])
def cancel_job(job_id: str) -> Response:
    if request.method == "OPTIONS":
        return _post_only()
    expected = expected_attempt()

    def cancel(job_id: str) -> tuple[Job, str]:
        outcome = control.cancel_job(deps().services, job_id, expected)
        return outcome.job, outcome.message

    return _operate(job_id, "cancel", cancel)


@bp.route("/jobs/<anyid:job_id>/retry", methods=["POST", "OPTIONS"])
def retry_job(job_id: str) -> Response:
    if request.method == "OPTIONS":
        return _post_only()
    expected = expected_attempt()

    def retry(job_id: str) -> tuple[Job, str]:
        again = control.retry_job(deps().services, job_id, expected)
        return again, f"job {again.job_id} runs again as attempt {again.attempt}"

    return _operate(job_id, "retry", retry)


def _operate(job_id: str, verb: str, operation: Callable[[str], tuple[Job, str]]) -> Response:
    """Cancel or retry: 202 with the job and what happened; 404, 409 (wrong state) or 503."""
    d = deps()
    job = _job_or_404(d, job_id)
    try:
        after, message = operation(job.job_id)
    except JobNotFound:
        raise ApiError(404, f"no job {job_id!r}", "job_id") from None
    except StaleAttempt as exc:
        raise ApiError(409, str(exc), "expected_attempt", code=ErrorCode.STALE_ATTEMPT) from None
    except WrongState as exc:
        raise ApiError(409, str(exc), code=WRONG_STATE[verb]) from None
    except SettingsError as exc:
        raise ApiError(503, f"cannot {verb} here: {exc}") from None
    return _json({"job": _summary(d, after), "message": message}, 202)


@bp.get("/voices")
def voices() -> Response:
    """``?api=v3|v4`` (v3 when omitted): that API's voices from the voice cache, which an
    empty cache fills from Akool first when this service has Akool's credentials."""
    unknown = sorted(k for k in request.args if k != "api")
    if unknown:
        _bad(unknown[0][:60], "unknown parameter; use api")
    try:
        api = speech_api(_one("api") or LEGACY_API).name
    except ValueError as exc:
        _bad("api", str(exc))
    d = deps()
    if not d.voices.enabled:
        raise ApiError(503, "the voice cache is off (VOICE_CACHE_TTL=0)")
    svc = d.services
    client: Callable[[], AkoolClient] | None = lambda: svc.akool  # noqa: E731
    try:
        d.settings.require_credentials()
    except SettingsError:
        client = None
    cached = voicecache.listed(d.voices, client, svc.limiter, api)
    if cached is None:
        raise ApiError(
            503,
            f"the {api} voice cache is empty or stale and Akool could not fill it now: beat's "
            "maintenance.refresh_voices fills it at start and every VOICE_REFRESH_INTERVAL s "
            "(is beat running?); `akool-audio voices --refresh` lists the voices straight "
            "from Akool",
        )
    return _json({"api": api, "voices": cached.voices, "age": round(cached.age, 3)})


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return _json(openapi.document(deps().settings))
