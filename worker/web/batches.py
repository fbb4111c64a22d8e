"""``/v1/batches``: many jobs posted in one request and followed as one.

``POST /v1/batches`` ``{"jobs": [...], "metadata": {...}, "batch_id"?}`` records a batch
(:mod:`worker.jobs.batchstore`) and answers each item in order with ``{"job_id", "state"}`` or
``{"error": {...}}``: every item goes through :func:`worker.web.intake.submit`, exactly as a
``POST /v1/jobs`` body would, so one bad item refuses only itself. The batch id is part of each
job's request: the same POST again (same ``batch_id`` and job ids) is answered from the records
and sends nothing twice. ``GET /v1/batches/{id}`` counts its jobs by state;
``POST /v1/batches/{id}/cancel`` cancels those that have not ended; ``GET /v1/jobs?batch=ID``
lists them.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, NoReturn

from flask import Blueprint, Response, jsonify, request

from config.settings import SettingsError
from tasks import control
from worker.jobs import JobConflict, JobNotFound, WrongState
from worker.jobs.batchstore import MAX_BODY, MAX_JOBS, Batch, BatchConflict
from worker.jobs.request import InvalidRequest, is_job_id, parse_job_id, parse_metadata
from worker.web import intake
from worker.web.deps import Deps, deps
from worker.web.jsonerrors import ApiError, ErrorCode, error_body

bp = Blueprint("batches", __name__, url_prefix="/v1")
FIELDS = ("jobs", "metadata", "batch_id")


def _bad(field: str, message: str) -> NoReturn:
    raise ApiError(400, f"{field}: {message}", field)


def _json(doc: dict[str, Any], status: int = 200, location: str | None = None) -> Response:
    response = jsonify(doc)
    response.status_code = status
    if location is not None:
        response.headers["Location"] = location
    return response


def links(batch_id: str) -> dict[str, str]:
    base = f"/v1/batches/{batch_id}"
    return {"self": base, "jobs": f"/v1/jobs?batch={batch_id}", "cancel": f"{base}/cancel"}


def _read_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "send JSON with Content-Type: application/json")
    request.max_content_length = MAX_BODY
    try:
        body = json.loads(request.get_data(cache=False))
    except (ValueError, RecursionError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        _bad("body", "must be a JSON object")
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        _bad(unknown[0][:60], f"unknown field; allowed: {', '.join(FIELDS)}")
    return body


def _item(d: Deps, item: Any, batch_id: str) -> dict[str, Any]:
    """One job of the batch: its answer, never an exception for the item's own fault."""
    try:
        got = intake.submit(d, item, batch_id)
    except InvalidRequest as exc:
        return error_body(400, str(exc), exc.field, ErrorCode.INVALID_FIELD)
    except JobConflict as exc:
        return error_body(409, str(exc), "job_id", ErrorCode.JOB_ID_CONFLICT)
    d.jobs.batches.add(batch_id, [got.job_id])
    return {"job_id": got.job_id, "state": got.state.value}


@bp.post("/batches")
def create_batch() -> Response:
    body = _read_body()
    items = body.get("jobs")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_JOBS:
        _bad("jobs", f"must be a list of 1 to {MAX_JOBS} job bodies (as POST /v1/jobs takes)")
    try:
        metadata = parse_metadata(body.get("metadata"))
        batch_id = parse_job_id(body.get("batch_id")) or uuid.uuid4().hex
    except InvalidRequest as exc:
        field = "batch_id" if exc.field == "job_id" else exc.field
        raise ApiError(400, str(exc).replace("job_id", "batch_id", 1), field) from None
    d = deps()
    try:
        created = d.jobs.batches.open(batch_id, metadata)
    except BatchConflict as exc:
        raise ApiError(409, str(exc), "batch_id") from None
    answers = [_item(d, item, batch_id) for item in items]
    doc = {"batch_id": batch_id, "jobs": answers, "links": links(batch_id)}
    return _json(doc, 202 if created else 200, location=links(batch_id)["self"])


def _batch_or_404(d: Deps, batch_id: str) -> Batch:
    if not is_job_id(batch_id):
        _bad("batch_id", f"is not a batch id: {batch_id[:60]!r}")
    batch = d.jobs.batches.find(batch_id)
    if batch is None:
        raise ApiError(404, f"no batch {batch_id!r}", "batch_id")
    return batch


def _view(d: Deps, batch: Batch) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "created_at": batch.created_at,
        "metadata": batch.metadata,
        "total": len(batch.job_ids),
        **d.jobs.batches.counts(batch),
        "links": links(batch.batch_id),
    }


@bp.get("/batches/<batch_id>")
def get_batch(batch_id: str) -> Response:
    d = deps()
    return _json(_view(d, _batch_or_404(d, batch_id)))


@bp.post("/batches/<batch_id>/cancel")
def cancel_batch(batch_id: str) -> Response:
    """Ask every job of the batch that has not ended to stop; 202 with the batch's counts and
    how many were asked."""
    d = deps()
    batch = _batch_or_404(d, batch_id)
    asked = 0
    for job_id, state in zip(batch.job_ids, d.jobs.states(batch.job_ids), strict=True):
        if state is None or state in ("succeeded", "failed", "cancelled"):
            continue
        try:
            outcome = control.cancel_job(d.services, job_id)
        except (JobNotFound, WrongState):
            continue  # it ended meanwhile, or expired
        except SettingsError as exc:
            raise ApiError(503, f"cannot cancel here: {exc}") from None
        asked += int(outcome.changed)
    return _json({**_view(d, batch), "cancel_asked": asked}, 202)
