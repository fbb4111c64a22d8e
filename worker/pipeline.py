"""The job's steps as plain functions, free of Celery: accept, submit, poll, download, finish,
deliver. Each returns ``None`` to go on or :class:`Later` to be called again after a countdown;
the tasks in ``tasks/`` only map that onto Celery. Every step is idempotent against the job
record, so a redelivered message does no harm."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker import estimate, notify, voicecache
from worker.akool import AudioStatus
from worker.akool import errors as akool_errors
from worker.backoff import backoff
from worker.download import DownloadError, download
from worker.intake import AudioRequest, InvalidRequest, from_record, parse_job_id, parse_request
from worker.jobs import Job, JobState
from worker.services import Services


@dataclass(frozen=True)
class Later:
    """Not done yet: run this step again in ``countdown`` seconds (a control-flow signal)."""

    countdown: float
    reason: str


def _spread(wait: float) -> float:
    # Callers that found the bucket empty must not all come back at the same instant.
    return wait + random.uniform(0.0, max(0.05, wait))


def _wait_for_token(svc: Services, job_id: str) -> Later | None:
    """None when this job may call Akool now; else when to come back.

    A job that must wait reserves its slot in the shared bucket (up to ``POLL_MAX_DELAY``
    ahead) and remembers it, so it comes back exactly then and does not ask again. Its due
    time in the active index moves with it, so the sweeper never mistakes waiting for lost.
    """
    held = svc.settings.key("token-held", job_id)
    if svc.jobs.r.delete(held):
        return None
    wait, reserved = svc.limiter.reserve(max_wait=svc.settings.poll_max_delay)
    if wait <= 0:
        return None
    if reserved:
        svc.jobs.r.set(held, "1", ex=int(wait) + 120)
    else:
        wait = _spread(wait)
    svc.jobs.set_due(job_id, time.time() + wait)
    return Later(wait, "rate limit")


def _error_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return str(code) if code is not None else type(exc).__name__


# --- accept -------------------------------------------------------------------------------


def accept(svc: Services, kind: str, kwargs: dict[str, Any], task_id: str) -> tuple[str, bool]:
    """Validate and record the job; returns (job_id, this task owns the job).

    Without a caller-given ``job_id`` the entry task's id is used, so a redelivered entry
    message finds its own record instead of creating (and submitting) a second job.
    """
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
    if request.voice_id and svc.jobs.find(job_id) is None:
        # Only for a new job (the cache may change before a retry of this same task).
        voicecache.validate_voice(svc, request.voice_id)  # only when the cache is fresh
    _, owner = svc.jobs.create(job_id, kind, request.to_record(), task_id)
    return job_id, owner == task_id


# --- submit -------------------------------------------------------------------------------


def _send(svc: Services, req: AudioRequest) -> Any:
    webhook = None
    if svc.settings.public_base_url:
        webhook = svc.settings.public_base_url.rstrip("/") + "/akool/webhook"
    if req.kind == "create":
        assert req.voice_id is not None
        return svc.akool.create_audio(req.input_text, req.voice_id, req.rate, webhook)
    return svc.akool.clone_audio(
        req.input_text,
        voice_url=req.voice_url,
        voice_id=req.voice_id,
        rate=req.rate,
        webhook_url=webhook,
    )


# Errors after which Akool may have created the job even though we saw no answer: only a
# failure to connect, or a definite API error code, proves that nothing was created.
_AMBIGUOUS = (
    akool_errors.ReadTimeout,
    akool_errors.ConnectionFailed,
    akool_errors.BadResponse,
    akool_errors.HTTPStatusError,
)


def submit(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state.is_final or job.akool_id:
        return None
    later = _wait_for_token(svc, job_id)
    if later is not None:
        return later
    s = svc.settings
    begun = svc.jobs.begin_submit(job_id, s.akool_connect_timeout + s.akool_read_timeout + 30)
    if begun in ("submitted", "final", "missing"):
        return None
    if begun == "busy":
        return Later(5.0, "another worker is submitting this job")
    try:
        record = _send(svc, from_record(job.request))
    except akool_errors.AkoolError as exc:
        return _submit_failed(svc, job, exc)
    first_due = time.time() + first_poll_delay(svc, job)
    recorded = svc.jobs.record_submitted(
        job_id, record.id, int(record.status), record.url, first_due
    )
    if recorded and record.status is AudioStatus.COMPLETED and record.url:
        # Done at create: straight to the download, no poll needed.
        svc.jobs.record_poll(job_id, 3, record.url, time.time(), counted=False)
    elif record.status is AudioStatus.FAILED:
        svc.jobs.fail(job_id, "akool_failed", f"Akool reported status 4 (failed) for {record.id}")
    return None


def _submit_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    svc.jobs.release_submit(job.job_id, ambiguous=isinstance(exc, _AMBIGUOUS))
    attempts = job.submit_attempts + 1
    if exc.retryable and attempts <= svc.settings.transient_error_budget:
        delay = backoff(attempts - 1, base=1.0, cap=svc.settings.poll_max_delay)
        svc.jobs.set_due(job.job_id, time.time() + delay)
        return Later(delay, f"submit failed ({type(exc).__name__}), retrying")
    reason = str(exc) if not exc.retryable else f"gave up after {attempts} attempts: {exc}"
    svc.jobs.fail(job.job_id, _error_code(exc), reason)
    return None


# --- poll ---------------------------------------------------------------------------------


def first_poll_delay(svc: Services, job: Job) -> float:
    """Near the expected completion once there is history (worker/estimate.py), else soon.

    The first countdown may exceed POLL_MAX_DELAY but stays under the visibility timeout less
    a task's time limit and kombu's restore sweep, like every countdown (celery-notes A1).
    """
    s = svc.settings
    model = svc.estimator.model()
    if model is None:
        return s.poll_initial_delay
    longest = min(s.poll_deadline, s.visibility_timeout - s.task_time_limit - 120)
    words = estimate.words_of(str(job.request.get("input_text", "")))
    return estimate.first_delay(model, words, floor=0.5, cap=max(s.poll_max_delay, longest))


def next_poll_delay(svc: Services, job: Job, now: float) -> float:
    s = svc.settings
    model = svc.estimator.model()
    if model is not None and job.submitted_at is not None:
        words = estimate.words_of(str(job.request.get("input_text", "")))
        elapsed = now - job.submitted_at
        return estimate.next_delay(model, words, elapsed, floor=0.5, cap=s.poll_max_delay)
    return backoff(
        job.polls,
        base=s.poll_initial_delay,
        cap=s.poll_max_delay,
        factor=1.5,
        floor=0.5,
        jitter=0.2,
    )


def _learn(svc: Services, job: Job, detected_at: float) -> None:
    if job.submitted_at is None:
        return
    previous = job.updated_at if job.polls > 0 else None
    seconds = estimate.observed_duration(job.submitted_at, previous, detected_at)
    svc.estimator.observe(estimate.words_of(str(job.request.get("input_text", ""))), seconds)


def poll(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state in (JobState.DOWNLOADING, JobState.SUCCEEDED, JobState.FAILED):
        return None
    if job.akool_id is None:
        raise RuntimeError(f"job {job_id} is polled before it was submitted")
    now = time.time()
    if job.akool_status == AudioStatus.COMPLETED and job.audio_url:  # done at create
        svc.jobs.record_poll(job_id, 3, job.audio_url, now, counted=False)
        return None
    later = _wait_for_token(svc, job_id)
    if later is not None:
        return later
    try:
        record = svc.akool.get_audio(job.akool_id)
    except akool_errors.AkoolError as exc:
        return _poll_failed(svc, job, exc)
    status = record.status
    if status is AudioStatus.COMPLETED:
        if not record.url:
            return _poll_failed(
                svc, job, akool_errors.BadResponse("status 3 without a url", endpoint="detail")
            )
        svc.jobs.record_poll(job_id, 3, record.url, now, lag=now - (job.due_at or now))
        _learn(svc, job, time.time())
        return None
    if status is AudioStatus.FAILED:
        svc.jobs.record_poll(job_id, 4, None, now)
        svc.jobs.fail(
            job_id, "akool_failed", f"Akool reported status 4 (failed) for audio {job.akool_id}"
        )
        return None
    if status is AudioStatus.QUEUEING or status is AudioStatus.PROCESSING:
        if job.deadline_at is not None and now >= job.deadline_at:
            # The last look is taken at the deadline: a job that finished just before is kept.
            svc.jobs.record_poll(job_id, int(status), None, now)
            svc.jobs.fail(
                job_id,
                "deadline",
                f"Akool did not finish the audio within the "
                f"{svc.settings.poll_deadline:g} s deadline (last status "
                f"{int(status)}, {job.polls + 1} polls)",
            )
            return None
        delay = next_poll_delay(svc, job, now)
        if job.deadline_at is not None:
            delay = max(0.5, min(delay, job.deadline_at - now))
        lag = now - (job.due_at or now)
        svc.jobs.record_poll(job_id, int(status), None, now + delay, lag=lag)
        return Later(delay, f"Akool status {int(status)}")
    raise AssertionError(f"unhandled status {status!r}")  # AudioStatus is a closed set


def _poll_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    if not exc.retryable:
        svc.jobs.fail(job.job_id, _error_code(exc), str(exc))
        return None
    errors = job.transient_errors + 1
    if errors > svc.settings.transient_error_budget:
        svc.jobs.fail(
            job.job_id,
            _error_code(exc),
            f"gave up after {errors} transient errors while polling: {exc}",
        )
        return None
    delay = backoff(errors - 1, base=1.0, cap=svc.settings.poll_max_delay)
    svc.jobs.record_poll(job.job_id, None, None, time.time() + delay, error=True)
    return Later(delay, f"poll failed ({type(exc).__name__}), retrying")


# --- download -----------------------------------------------------------------------------


def fetch(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state.is_final:
        return None
    if job.state is not JobState.DOWNLOADING or not job.audio_url:
        raise RuntimeError(f"job {job_id} is in state {job.state}, not ready to download")
    s = svc.settings
    try:
        got = download(
            svc.http,
            job.audio_url,
            s.audio_dir,
            job_id,
            max_bytes=s.download_max_bytes,
            timeout=s.download_timeout,
            allow_hosts=s.allow_private_hosts,
            total_timeout=max(30.0, s.task_time_limit - 30.0),
        )
    except DownloadError as exc:
        errors = svc.jobs.count_transient_error(job_id)
        if exc.retryable and errors <= s.transient_error_budget:
            delay = backoff(errors - 1, base=1.0, cap=s.poll_max_delay)
            return Later(delay, f"download failed ({exc}), retrying")
        svc.jobs.fail(
            job_id, "download_" + type(exc).__name__.removeprefix("Download").lower(), str(exc)
        )
        return None
    svc.jobs.succeed(job_id, str(got.path.resolve()), got.sha256, got.bytes)
    return None


def timed_out(svc: Services, job_id: str, retries: int) -> float | None:
    """A step ran past Celery's soft time limit (Redis or Akool stalled, a slow disk). Every step
    is idempotent against the job record, so it runs again after a backoff, counted against the
    job's transient error budget; beyond the budget the job fails with ``time_limit``. An entry
    task that timed out before its record existed counts its own retries instead. Returns the
    countdown, or None to give up."""
    s = svc.settings
    if svc.jobs.find(job_id) is None:
        return (
            backoff(retries, base=1.0, cap=s.poll_max_delay)
            if retries < s.transient_error_budget
            else None
        )
    errors = svc.jobs.count_transient_error(job_id)
    if errors <= s.transient_error_budget:
        return backoff(errors - 1, base=1.0, cap=s.poll_max_delay)
    svc.jobs.fail(
        job_id,
        "time_limit",
        f"a step ran past TASK_TIME_LIMIT ({s.task_time_limit} s) {errors} times",
    )
    return None


# --- finish and deliver -------------------------------------------------------------------


def finish(svc: Services, job_id: str) -> tuple[dict[str, Any], bool]:
    """The final summary, and whether notifications are still owed to the caller.

    The summary is published on the events channel once (the first finisher claims it). The
    notifications themselves go through :func:`deliver`, which is idempotent, so every finisher
    may enqueue it: a finisher that crashes after its claim still leaves one behind.
    """
    job = svc.jobs.get(job_id)
    if not job.state.is_final:
        raise RuntimeError(f"job {job_id} is not final ({job.state})")
    summary = job.summary()
    if svc.jobs.claim_finish(job_id):
        notify.publish(svc.jobs.r, svc.settings.events_channel, summary)
    request = from_record(job.request)
    owed = (bool(request.notify_task) and job.notify_task_state != "sent") or (
        bool(request.notify_url) and job.notify_state not in ("delivered", "undeliverable")
    )
    return summary, owed


SendTask = Callable[[str, list[Any], str], None]


def deliver(svc: Services, job_id: str, attempt: int, send_task: SendTask) -> Later | None:
    """Send ``notify_task`` and POST ``notify_url``, each at most once per job.

    Failures are recorded on the job and never raised: a notification never fails a job.
    A short lock keeps two deliveries of the same job from racing.
    """
    lock = svc.jobs.lock_notify(job_id, ttl=svc.settings.notify_timeout + 30)
    if lock is None:
        return Later(5.0, "another delivery of this job is in progress")
    try:
        job = svc.jobs.get(job_id)
        request = from_record(job.request)
        summary = job.summary()
        if request.notify_task and job.notify_task_state != "sent":
            send_task(request.notify_task, [summary], request.notify_queue)
            svc.jobs.set_fields(job_id, notify_task_state="sent")
        if request.notify_url and job.notify_state not in ("delivered", "undeliverable"):
            return _post(svc, job_id, request.notify_url, summary, attempt)
        return None
    finally:
        svc.jobs.unlock_notify(job_id, lock)


def _post(
    svc: Services, job_id: str, url: str, summary: dict[str, Any], attempt: int
) -> Later | None:
    s = svc.settings
    try:
        notify.post(
            svc.http,
            url,
            summary,
            s.notify_secret,
            timeout=s.notify_timeout,
            allow_hosts=s.allow_private_hosts,
        )
    except notify.NotifyError as exc:
        if exc.retryable and attempt + 1 < s.notify_max_attempts:
            delay = backoff(attempt, base=2.0, cap=min(300.0, s.visibility_timeout / 3))
            svc.jobs.set_fields(job_id, notify_error=str(exc), notify_attempts=attempt + 1)
            return Later(delay, str(exc))
        svc.jobs.set_fields(
            job_id, notify_state="undeliverable", notify_error=str(exc), notify_attempts=attempt + 1
        )
        return None
    svc.jobs.set_fields(job_id, notify_state="delivered", notify_attempts=attempt + 1)
    return None
