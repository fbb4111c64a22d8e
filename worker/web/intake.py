"""``POST /v1/jobs`` as a plain function: validate, record, send.

The body is the kwargs of ``audio.create`` / ``audio.clone`` plus ``kind``, validated by the same
functions and with the same messages as the tasks (:mod:`worker.jobs.request`); a bad request
records nothing and sends nothing. A good one is recorded with a fresh task id as its owner,
then that entry task is sent with the same kwargs: its ``pipeline.accept`` finds the record with
its own id as the owner and submits. The same ``job_id`` with the same request finds the job
that exists and sends nothing again; with another request it is a conflict (``JobConflict``).

``notify_task`` and ``notify_queue`` are refused here, as on every HTTP path
(:func:`worker.jobs.request.parse_http_request`): they make a worker send a named task to
any queue of our broker, which is for callers that already enqueue through Celery, not for
a holder of an HTTP token. Over HTTP, ``notify_url`` is the way to be told.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from worker.jobs import Job, JobState
from worker.jobs.request import (
    ALLOWED,
    CELERY_ONLY,
    InvalidRequest,
    check_http_fields,
    parse_http_request,
    parse_job_id,
)
from worker.web.deps import Deps


@dataclass(frozen=True)
class Intake:
    job_id: str
    state: JobState
    created: bool  # False: the same request was posted before; nothing was sent again
    job: Job | None = None  # the record that existed (created is False)


def allowed_fields(kind: str) -> frozenset[str]:
    return frozenset({"kind"} | ALLOWED[kind]) - frozenset(CELERY_ONLY)


def check_body(body: Any) -> tuple[str, dict[str, Any]]:
    """The kind and the task kwargs of a body; raises InvalidRequest for the first fault."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("body", "must be a JSON object")
    kind = body.get("kind")
    if kind is None:
        raise InvalidRequest("kind", "is required: create or clone")
    if not isinstance(kind, str) or kind not in ALLOWED:
        raise InvalidRequest("kind", f"must be create or clone, got {str(kind)[:60]!r}")
    check_http_fields(body)
    allowed = allowed_fields(kind)
    unknown = sorted(str(k) for k in body if k not in allowed)
    if unknown:
        shown = ", ".join(u[:60] for u in unknown[:5])
        raise InvalidRequest(
            unknown[0][:60],
            f"unknown field(s) {shown} for kind {kind}; allowed: {', '.join(sorted(allowed))}",
        )
    return kind, {k: v for k, v in body.items() if k != "kind" and v is not None}


def submit(deps: Deps, body: Any, batch_id: str | None = None) -> Intake:
    """Validate ``body``, record the job (in batch ``batch_id``, which is then part of its
    request) and send its entry task (see the module's docstring).

    Raises InvalidRequest (400) and JobConflict (409).
    """
    kind, kwargs = check_body(body)
    request = replace(parse_http_request(kind, kwargs, deps.settings), batch_id=batch_id)
    job_id = parse_job_id(kwargs.get("job_id")) or uuid.uuid4().hex
    existing = deps.jobs.find(job_id)
    if existing is None and request.voice_id:
        # As pipeline.accept does for a new job: refused only when the voice cache is fresh.
        found = deps.request_problem(request) if deps.request_problem is not None else None
        if found:
            raise InvalidRequest(*found)
    task_id = str(uuid.uuid4())
    outcome, _ = deps.jobs.create(job_id, kind, request.to_record(), task_id)
    if outcome != "created":
        job = deps.jobs.get(job_id)
        return Intake(job_id, job.state, created=False, job=job)
    # Should this send fail, the record stays accepted and the sweeper submits it later.
    deps.send(f"audio.{kind}", {**kwargs, "job_id": job_id}, task_id)
    return Intake(job_id, JobState.ACCEPTED, created=True)
