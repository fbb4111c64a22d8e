"""The job's steps as plain functions, free of Celery: accept, submit, poll, fetch, finish.
Each returns ``None`` to go on or :class:`~worker.pipeline.schedule.Later` to be called again
after a countdown; the tasks in ``tasks/`` only map that onto Celery. Every step is idempotent
against the job record, so a redelivered message does no harm."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any, assert_never

from worker.akool import AudioJob, AudioStatus
from worker.akool import errors as akool_errors
from worker.akool.speech import APIS
from worker.backoff import backoff
from worker.egress.download import Downloaded, DownloadError, download
from worker.fleet import counters
from worker.fleet.voicecache import request_problem
from worker.jobs import ErrorCode, EventKind, Job, JobState, NotifyState
from worker.jobs.request import (
    AudioRequest,
    InvalidRequest,
    from_record,
    parse_job_id,
    parse_request,
)
from worker.pipeline import clonestage
from worker.pipeline.akoolcodes import AMBIGUOUS, error_code
from worker.pipeline.schedule import (
    Later,
    error_delay,
    first_poll_delay,
    learn,
    longest_countdown,
    next_poll_delay,
    wait_for_token,
)
from worker.services import Services
from worker.storage import ResultStore, StorageError

log = logging.getLogger(__name__)


class Stale(RuntimeError):
    """A step found its job in a state it cannot act on: the message belongs to an earlier
    attempt of a retried job (or a chain that a cancel overtook). The task drops the rest of
    its chain; the job's current attempt has its own."""


def _failed_status(akool_id: str) -> str:
    return f"Akool reported status 4 (failed) for audio {akool_id}"


# --- accept -------------------------------------------------------------------------------


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


# --- submit -------------------------------------------------------------------------------


def webhook_url(svc: Services) -> str | None:
    """Where Akool calls back (the web service's receiver), when it is reachable publicly."""
    if svc.settings.public_base_url:
        return svc.settings.public_base_url.rstrip("/") + "/akool/webhook"
    return None


def _send(svc: Services, req: AudioRequest, voice_id: str | None = None) -> AudioJob:
    return APIS[req.api].submit(svc.akool, req, webhook_url(svc), voice_id)


_AMBIGUOUS = AMBIGUOUS


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
        svc.jobs.fail(job_id, ErrorCode.AKOOL_FAILED, _failed_status(record.id))
    return None


def _submit_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    svc.jobs.release_submit(job.job_id, error_code(exc), ambiguous=isinstance(exc, _AMBIGUOUS))
    attempts = job.submit_attempts + 1
    if exc.retryable and attempts <= svc.settings.transient_error_budget:
        delay = error_delay(svc, attempts, exc)
        svc.jobs.set_due(job.job_id, time.time() + delay)
        return Later(delay, f"submit failed ({error_code(exc)}), retrying")
    reason = str(exc) if not exc.retryable else f"gave up after {attempts} attempts: {exc}"
    svc.jobs.fail(job.job_id, error_code(exc), reason)
    return None


# --- poll ---------------------------------------------------------------------------------


def poll(svc: Services, job_id: str) -> Later | None:
    job = svc.jobs.get(job_id)
    if job.state.is_final or job.state.is_fetching:
        # Done by another path (a callback, the poll of a duplicate chain, a cancel), which
        # continues the job itself: this chain's download and finish would only repeat it.
        raise Stale(f"job {job_id} is {job.state.value}; its poll chain is not needed")
    if job.state is JobState.CANCELLING:
        svc.jobs.cancel(job_id, force=True)
        return None
    if job.akool_id is None:
        raise Stale(f"job {job_id} is polled before it was submitted")
    now = time.time()
    if job.akool_status is AudioStatus.COMPLETED and job.audio_url:  # done at create
        svc.jobs.record_poll(
            job_id, AudioStatus.COMPLETED, job.audio_url, now, counted=False, source="create"
        )
        return None
    later = wait_for_token(svc, job_id)
    if later is not None:
        return later
    try:
        record = APIS[job.api].poll(svc.akool, job.akool_id)
    except akool_errors.AkoolError as exc:
        return _poll_failed(svc, job, exc)
    status = record.status
    match status:
        case AudioStatus.COMPLETED:
            if not record.url:
                missing = akool_errors.BadResponse("status 3 without a url", endpoint="detail")
                return _poll_failed(svc, job, missing)
            svc.jobs.record_poll(job_id, status, record.url, now, lag=now - (job.due_at or now))
            learn(svc, job, time.time())
            return None
        case AudioStatus.FAILED:
            svc.jobs.record_poll(job_id, status, None, now)
            svc.jobs.fail(job_id, ErrorCode.AKOOL_FAILED, _failed_status(job.akool_id))
            return None
        case AudioStatus.QUEUEING | AudioStatus.PROCESSING:
            return _not_done(svc, job, status, now)
        case _:
            assert_never(status)


def _not_done(svc: Services, job: Job, status: AudioStatus, now: float) -> Later | None:
    if job.deadline_at is not None and now >= job.deadline_at:
        # The last look is taken at the deadline: a job that finished just before is kept.
        svc.jobs.record_poll(job.job_id, status, None, now)
        svc.jobs.fail(
            job.job_id,
            ErrorCode.DEADLINE,
            f"Akool did not finish the audio within the {svc.settings.poll_deadline:g} s "
            f"deadline (last status {int(status)}, {job.polls + 1} polls)",
        )
        return None
    delay = _before_deadline(job, next_poll_delay(svc, job, now), now)
    lag = now - (job.due_at or now)
    svc.jobs.record_poll(job.job_id, status, None, now + delay, lag=lag)
    return Later(delay, f"Akool status {int(status)}", parkable=job)


def _before_deadline(job: Job, delay: float, now: float) -> float:
    """A poll's wait, shortened so that the last look is taken at the deadline."""
    if job.deadline_at is None:
        return delay
    return max(0.5, min(delay, job.deadline_at - now))


def _poll_failed(svc: Services, job: Job, exc: akool_errors.AkoolError) -> Later | None:
    if isinstance(exc, akool_errors.RateLimited):
        svc.limiter.penalize()
    if not exc.retryable:
        svc.jobs.fail(job.job_id, error_code(exc), str(exc))
        return None
    errors = job.transient_errors + 1
    if errors > svc.settings.transient_error_budget:
        svc.jobs.fail(
            job.job_id,
            error_code(exc),
            f"gave up after {errors} transient errors while polling: {exc}",
        )
        return None
    now = time.time()
    delay = _before_deadline(job, error_delay(svc, errors, exc), now)
    svc.jobs.record_poll(job.job_id, None, None, now + delay, error=True)
    return Later(delay, f"poll failed ({error_code(exc)}), retrying", parkable=job)


# --- download -----------------------------------------------------------------------------


def fetch(svc: Services, job_id: str) -> Later | None:
    """Download the result and put it in the result store, then end the job succeeded."""
    job = svc.jobs.get(job_id)
    if job.state.is_final:
        return None
    if job.state is JobState.CANCELLING:
        svc.jobs.cancel(job_id, force=True)  # nothing is downloaded after a cancel
        _discard_staged(svc, job)
        return None
    if not job.state.is_fetching or not job.audio_url:
        raise Stale(f"job {job_id} is in state {job.state}, not ready to download")
    got = _staged(svc, job)
    fetched = None
    if got is None:
        s = svc.settings
        started = time.time()
        try:
            got = download(
                svc.http,
                job.audio_url,
                svc.store.staging_dir,
                job_id,
                max_bytes=s.download_max_bytes,
                timeout=s.download_timeout,
                allow_hosts=s.allow_private_hosts,
                total_timeout=max(30.0, s.task_time_limit - 30.0),
            )
        except DownloadError as exc:
            failed = {"started": round(started, 3), "code": exc.code, "error": str(exc)[:300]}
            errors = svc.jobs.count_transient_error(job_id, (EventKind.DOWNLOAD_FAILED, failed))
            if exc.retryable and errors <= s.transient_error_budget:
                return Later(error_delay(svc, errors), f"download failed ({exc}), retrying")
            svc.jobs.fail(job_id, exc.code, str(exc))
            return None
        fetched = {
            "t": time.time(),  # when the download ended (the event is written with the next step)
            "started": round(started, 3),
            "bytes": got.bytes,
            "sha256": got.sha256,
        }
    now_state = svc.jobs.states([job_id])[0]
    if now_state not in (JobState.DOWNLOADING, JobState.STORING):
        # cancelled (or ended otherwise) while downloading: nothing is stored
        if now_state == JobState.CANCELLING:
            svc.jobs.cancel(job_id, force=True)
        _drop_fetched(now_state, got)
        return None
    return _keep(svc, job, got, fetched)


def _staged(svc: Services, job: Job) -> Downloaded | None:
    """The result this host fetched before the store refused it, if it is still whole."""
    if job.state is not JobState.STORING or not job.staged or not job.sha256:
        return None
    path = svc.store.staging_dir / job.staged
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except OSError:
        return None  # fetched on another host, or purged: download it again
    if digest != job.sha256 or size != job.bytes:
        return None
    return Downloaded(path, digest, size)


# The longest wait between two tries of a refused result: the store is back within a minute.
STORAGE_RETRY_CAP = 60.0


def _drop_fetched(state: str | None, got: Downloaded) -> None:
    """Delete a download its job no longer wants, unless the job succeeded meanwhile (another
    chain stored it): a local store downloads straight to the result's own name, so that file
    may be the stored result itself."""
    if state != JobState.SUCCEEDED:
        got.path.unlink(missing_ok=True)


def _discard_staged(svc: Services, job: Job) -> None:
    if job.staged:
        (svc.store.staging_dir / job.staged).unlink(missing_ok=True)


def _keep(
    svc: Services, job: Job, got: Downloaded, fetched: dict[str, Any] | None = None
) -> Later | None:
    """Put the fetched file in the result store. A result Akool made is paid for: when the store
    refuses it, the job waits in ``storing`` (the reason on its record) and tries again, for up
    to ``STORAGE_RETRY_WINDOW``; only then does it fail with ``storage_failed``."""
    try:
        stored = svc.store.put(
            got.path,
            got.path.name,
            sha256=got.sha256,
            size=got.bytes,
            content_type=got.content_type,
            metadata={"job_id": job.job_id, "akool_id": job.akool_id or ""},
        )
    except StorageError as exc:
        return _storage_refused(svc, job, got, exc, fetched)
    outcome = svc.jobs.succeed(
        job.job_id, stored.location, stored.file, got.sha256, got.bytes, fetched
    )
    if outcome == "cancelled":
        _remove(svc, job.job_id, stored.location)
    elif outcome == "ended":
        log.warning(
            "job %s ended while its result was stored; the result is at %s",
            job.job_id,
            stored.location,
        )
    return None


def _remove(svc: Services, job_id: str, location: str) -> None:
    """A result stored in the moment its job was cancelled is deleted again."""
    try:
        svc.store.delete(location)
    except StorageError as exc:
        log.warning("job %s was cancelled; its result at %s stays: %s", job_id, location, exc)


def _storage_refused(
    svc: Services,
    job: Job,
    got: Downloaded,
    exc: StorageError,
    fetched: dict[str, Any] | None,
) -> Later | None:
    s = svc.settings
    now = time.time()
    delay = backoff(
        job.storage_attempts, base=1.0, cap=min(STORAGE_RETRY_CAP, longest_countdown(svc))
    )
    waited = svc.jobs.wait_for_storage(
        job.job_id,
        str(exc),
        now + delay,
        staged=got.path.name,
        sha256=got.sha256,
        size=got.bytes,
        fetched=fetched,
    )
    if waited is None:  # the job ended meanwhile (cancelled, or finished by another chain)
        _drop_fetched(svc.jobs.states([job.job_id])[0], got)
        return None
    since, attempts = waited
    if now - since >= s.storage_retry_window:
        svc.jobs.fail(
            job.job_id,
            ErrorCode.STORAGE_FAILED,
            f"the result store refused the result for {now - since:.0f} s ({attempts} attempts, "
            f"STORAGE_RETRY_WINDOW={s.storage_retry_window:g}): {exc}",
        )
        return None
    log.warning(
        "job %s waits for the result store (attempt %d, next in %.0f s): %s",
        job.job_id,
        attempts,
        delay,
        exc,
    )
    return Later(delay, f"waiting for the result store ({svc.store.describe()}): {exc}")


def timed_out(svc: Services, job_id: str, retries: int) -> float | None:
    """A step ran past Celery's soft time limit (Redis or Akool stalled, a slow disk). Every step
    is idempotent against the job record, so it runs again after a backoff, counted against the
    job's transient error budget; beyond the budget the job fails with ``time_limit``. An entry
    task that timed out before its record existed counts its own retries instead. Returns the
    countdown, or None to give up."""
    s = svc.settings
    job = svc.jobs.find(job_id)
    if job is None:
        return error_delay(svc, retries + 1) if retries < s.transient_error_budget else None
    if job.state is JobState.STORING:
        # A slow store: it has its own window (STORAGE_RETRY_WINDOW), checked by the step.
        return backoff(job.storage_attempts, base=1.0, cap=STORAGE_RETRY_CAP)
    errors = svc.jobs.count_transient_error(job_id)
    if errors <= s.transient_error_budget:
        return error_delay(svc, errors)
    svc.jobs.fail(
        job_id,
        ErrorCode.TIME_LIMIT,
        f"a step ran past TASK_TIME_LIMIT ({s.task_time_limit} s) {errors} times",
    )
    return None


# --- finish -------------------------------------------------------------------------------


URL_DONE = (NotifyState.DELIVERED, NotifyState.UNDELIVERABLE)


def notifications_owed(job: Job) -> bool:
    """Whether ``notify_task`` or ``notify_url`` still has to be told about this job."""
    request = from_record(job.request)
    task_owed = bool(request.notify_task) and job.notify_task_state is not NotifyState.SENT
    url_owed = bool(request.notify_url) and job.notify_state not in URL_DONE
    return task_owed or url_owed


def result_summary(store: ResultStore, ttl: int, job: Job) -> dict[str, Any]:
    """The job's summary with a fresh ``download_url`` (valid ``ttl`` s) when its result is in
    object storage."""
    url = None
    if job.state is JobState.SUCCEEDED and job.location:
        try:
            url = store.download_url(job.location, ttl)
        except StorageError:
            url = None  # the summary stands without a link; `akool-audio url` makes one later
    return job.summary(url)


def finish(svc: Services, job_id: str) -> tuple[dict[str, Any], bool]:
    """The final summary, and whether notifications are still owed to the caller.

    The summary is published on the events channel once (the first finisher claims it). The
    notifications themselves go through :func:`~worker.pipeline.deliver.deliver`, which is
    idempotent, so every finisher may enqueue it: a finisher that crashes after its claim still
    leaves one behind.
    """
    job = svc.jobs.get(job_id)
    if not job.state.is_final:
        raise Stale(f"job {job_id} is not final ({job.state})")
    summary = result_summary(svc.store, svc.settings.download_url_ttl, job)
    if svc.jobs.claim_finish(job_id):
        svc.jobs.notices.publish(summary)
        counters.job_finished(job)
    return summary, notifications_owed(job)
