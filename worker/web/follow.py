"""Following a job without polling it (its result: worker/web/results.py).

- ``GET /v1/jobs/{id}?wait=N`` (N at most ``MAX_WAIT``): :func:`held` keeps the request until
  the job is final or N seconds pass; the answer is then the one without ``wait``.
- ``GET /v1/jobs/{id}/events``: Server-Sent Events, one per timeline event as it is written,
  ending after the event that ends the job; ``Last-Event-ID`` resumes (:func:`unsent`).
- Job GETs carry an ``ETag``; ``If-None-Match`` with it is 304 (:func:`conditional`).

The web server is gunicorn's gevent worker, so a held request or an open stream costs one
greenlet and no thread. Both read the job's record (and timeline) through the job store, first
after ``FIRST_LOOK`` s, then less and less often, at least every ``LONGEST_LOOK`` s: one small
Redis read a second per follower at most, and no connection held between reads.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from worker.jobs import EventKind, Job
from worker.jobs.request import is_job_id
from worker.jobs.timeline import EVENTS_MAX
from worker.web.deps import Deps, deps
from worker.web.jsonerrors import ApiError

bp = Blueprint("follow", __name__, url_prefix="/v1")

MAX_WAIT = 60
FIRST_LOOK, LONGEST_LOOK, GROWTH = 0.1, 1.0, 1.5
KEEPALIVE = 15.0  # a comment line on a quiet stream, so proxies keep it open
STREAM_SECONDS = 300.0  # then the stream ends; EventSource resumes it with Last-Event-ID
RECONNECT_MS = 2000
ENDING = frozenset({EventKind.SUCCEEDED, EventKind.FAILED, EventKind.CANCELLED})


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"{field}: {message}", field)


def find_job(d: Deps, job_id: str) -> Job:
    if not is_job_id(job_id):
        raise _bad("job_id", f"is not a job id: {job_id[:60]!r}")
    job = d.jobs.find(job_id)
    if job is None:
        raise ApiError(404, f"no job {job_id!r}", "job_id")
    return job


def _whole(name: str, raw: str, top: int) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6 or int(raw) > top:
        raise _bad(name, f"must be a whole number from 0 to {top}")
    return int(raw)


def wait_seconds() -> int:
    """The request's ``wait`` (0 without one); 400 for anything but 0 to MAX_WAIT, once."""
    values = request.args.getlist("wait")
    if len(values) > 1:
        raise _bad("wait", "give it once")
    return _whole("wait", values[0], MAX_WAIT) if values else 0


def _pauses() -> Iterator[float]:
    pause = FIRST_LOOK
    while True:
        yield pause
        pause = min(pause * GROWTH, LONGEST_LOOK)


def held(d: Deps, job: Job) -> Job:
    """``job`` as it is once final, or after the request's ``wait`` seconds (at once without)."""
    deadline = time.monotonic() + wait_seconds()
    for pause in _pauses():
        left = deadline - time.monotonic()
        if job.state.is_final or left <= 0:
            return job
        # ok-sleep: a web request's greenlet (gunicorn's gevent worker), not a worker slot
        time.sleep(min(pause, left))
        job = d.jobs.find(job.job_id) or job
    raise AssertionError("unreachable")


def etag(doc: dict[str, Any]) -> str:
    """The job document's tag: its content without ``download_url``, which is signed afresh on
    every GET of a job on S3 (a new link alone is not a change of the job)."""
    job = {k: v for k, v in doc.get("job", {}).items() if k != "download_url"}
    text = json.dumps({**doc, "job": job}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def conditional(doc: dict[str, Any]) -> Response:
    """``doc`` as JSON with its ``ETag``; 304 without a body when ``If-None-Match`` has it."""
    tag = etag(doc)
    if request.if_none_match.contains(tag):
        response = Response(status=304)
    else:
        response = Response(json.dumps(doc), mimetype="application/json")
    response.set_etag(tag)
    response.headers["Cache-Control"] = "no-cache"  # a cache may keep it, but asks each time
    return response


# -- Server-Sent Events ----------------------------------------------------------------------


def unsent(
    events: list[dict[str, Any]], sent: int, last: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The events of ``events`` (a timeline as read) a stream has not sent, ids ``sent + 1``
    on: ``sent`` is the id of the last one it sent (-1: none), ``last`` that event as it read it
    (None: this stream sent none yet). Ids are indexes in the timeline while it holds fewer than
    EVENTS_MAX events; once full, the oldest are dropped as new ones come, so a stream finds
    where it was by ``last`` and its ids keep counting (200, 201, ...)."""
    if len(events) < EVENTS_MAX:
        return events[sent + 1 :]
    if last is not None:
        for k in range(len(events) - 1, -1, -1):
            if events[k] == last:
                return events[k + 1 :]
        return events  # more than EVENTS_MAX written since the last read: a gap
    # A resume on a full timeline: an id past the kept list means "from now on".
    return events[sent + 1 :] if sent + 1 < len(events) else []


def _ended(job: Job | None, events: list[dict[str, Any]]) -> bool:
    """Whether the job has ended with the last of ``events`` that ends or restarts it (the job
    is read before the timeline, so its final event is in ``events``)."""
    if job is None:
        return True  # gone (expired): nothing more will be written
    if not job.state.is_final:
        return False
    for event in reversed(events):
        if event.get("type") in ENDING:
            return True
        if event.get("type") == EventKind.RETRIED:
            return False
    return True


def _frame(event_id: int, event: dict[str, Any]) -> str:
    return f"id: {event_id}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def stream(d: Deps, job_id: str, sent: int) -> Iterator[str]:
    """The events of ``job_id`` after id ``sent``, as written, until the job has ended."""
    yield f"retry: {RECONNECT_MS}\n\n"
    started = quiet = time.monotonic()
    last: dict[str, Any] | None = None
    pauses = _pauses()
    while True:
        job = d.jobs.find(job_id)
        events = d.jobs.timeline.events(job_id)
        new = unsent(events, sent, last)
        for event in new:
            sent += 1
            yield _frame(sent, event)
        last = events[-1] if events else last
        if _ended(job, events):
            return
        now = time.monotonic()
        if new:
            quiet, pauses = now, _pauses()
        elif now - quiet >= KEEPALIVE:
            quiet = now
            yield ": keepalive\n\n"
        if now - started >= STREAM_SECONDS:
            return
        time.sleep(next(pauses))  # ok-sleep: the stream's greenlet, as in held()


@bp.get("/jobs/<job_id>/events")
def events(job_id: str) -> Response:
    d = deps()
    job = find_job(d, job_id)
    raw = request.headers.get("Last-Event-ID")
    sent = -1 if raw is None or raw.strip() == "" else _whole("Last-Event-ID", raw.strip(), 10**6)
    response = Response(stream(d, job.job_id, sent), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
    return response
