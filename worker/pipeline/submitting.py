"""The first two steps: ``accept`` (validate the request once and record the job) and
``submit`` (send it to Akool, once: a redelivered message finds the akool id recorded)."""

from __future__ import annotations

import time
from typing import Any

from worker.akool import AudioJob, AudioStatus
from worker.akool import errors as akool_errors
from worker.akool.speech import APIS
from worker.fleet import counters
from worker.fleet.voicecache import request_problem
from worker.jobs import ErrorCode, Job
from worker.jobs.request import (
    AudioRequest,
    InvalidRequest,
    from_record,
    parse_job_id,
    parse_request,
)
from worker.pipeline import clonestage
from worker.pipeline.akoolcodes import AMBIGUOUS, error_code, failed_status
from worker.pipeline.schedule import Later, error_delay, first_poll_delay, wait_for_token
from worker.services import Services


def accept(svc: Services, kind: str, kwargs: dict[str, Any], task_id: str) -> tuple[str, bool]:
    """Validate and record the job; returns (job_id, this task owns the job).

    Without a caller-given ``job_id`` the entry task's id is used, so a redelivered entry
    message finds its own record instead of creating (and submitting) a second job. A record
    made for this very message (by the web intake, which validated it, or by an earlier run
    of this task, now retried) is used as it is: a request is validated once.
    """
    known = _recorded(svc, kwargs.get("job_id"), task_id)
    if known is not None and known.owner_task_id == task_id:
        return known.job_id, True
    request = parse_request(kind, kwargs, svc.settings)
    job_id = parse_job_id(kwargs.get("job_id"))
    if job_id is None:
        try:
            job_id = parse_job_id(task_id)
        except InvalidRequest:
            raise InvalidRequest(
                "job_id", f"is required: the task id {task_id[:60]!r} cannot name a file"
            ) from None
        assert job_id is not None
    if request.voice_id and known is None:
        # Only for a new job (the cache may change before a retry of this same task), and only
        # when the voice cache is fresh: otherwise Akool remains the judge.
        problem = request_problem(svc.voices, svc.akool, svc.limiter, request)
        if problem:
            raise InvalidRequest(*problem)
    _, owner = svc.jobs.create(job_id, kind, request.to_record(), task_id)
    return job_id, owner == task_id


def _recorded(svc: Services, given: Any, task_id: str) -> Job | None:
    """The record under the job's id (the caller's ``job_id``, else the task id), if any;
    None too when that id is not a valid one (parsing the request says why)."""
    try:
        job_id = parse_job_id(given) or parse_job_id(task_id)
    except InvalidRequest:
        return None
    return None if job_id is None else svc.jobs.find(job_id)


def webhook_url(svc: Services) -> str | None:
    """Where Akool calls back (the web service's receiver), when it is reachable publicly."""
    if svc.settings.public_base_url:
        return svc.settings.public_base_url.rstrip("/") + "/akool/webhook"
    return None


def _send(svc: Services, req: AudioRequest, voice_id: str | None = None) -> AudioJob:
    return APIS[req.api].submit(svc.akool, req, webhook_url(svc), voice_id)


def submit(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state.is_final or job.akool_id:
        return None
    later = wait_for_token(svc, job_id)
    if later is not None:
        return later
    voice_id = job.cloned_voice_id
    if clonestage.needs_voice(job):
        # v4 clone from a sample: first a voice (cloned once per sample), then the speech.
        got = clonestage.voice_for(svc, job)
        if got is None or isinstance(got, Later):
            return got
        voice_id = got
        later = wait_for_token(svc, job_id)  # the speech is a call of its own
        if later is not None:
            return later
    s = svc.settings
    begun = svc.jobs.begin_submit(job_id, s.akool_connect_timeout + s.akool_read_timeout + 30)
    if begun in ("submitted", "final", "missing"):
        return None
    if begun == "busy":
        return Later(5.0, "another worker is submitting this job")
    try:
        record = _send(svc, from_record(job.request), voice_id)
    except akool_errors.AkoolError as exc:
        return _submit_failed(svc, job, exc)
    first_due = time.time() + first_poll_delay(svc, job)
    if record.credits is not None:
        counters.credits(record.credits)
    # Done at create (status 3 with a url): the record goes straight to downloading.
    svc.jobs.record_submitted(
        job_id, record.id, record.status, record.url, first_due, credits=record.credits
    )
    if record.status is AudioStatus.FAILED:
        svc.jobs.fail(job_id, ErrorCode.AKOOL_FAILED, failed_status(record.id))
    return None


def _submit_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    svc.jobs.release_submit(job.job_id, error_code(exc), ambiguous=isinstance(exc, AMBIGUOUS))
    attempts = job.submit_attempts + 1
    if exc.retryable and attempts <= svc.settings.transient_error_budget:
        delay = error_delay(svc, attempts, exc)
        svc.jobs.set_due(job.job_id, time.time() + delay)
        return Later(delay, f"submit failed ({error_code(exc)}), retrying")
    reason = str(exc) if not exc.retryable else f"gave up after {attempts} attempts: {exc}"
    svc.jobs.fail(job.job_id, error_code(exc), reason)
    return None
