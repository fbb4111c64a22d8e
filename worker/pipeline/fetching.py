"""The ``fetch`` step: download the finished audio and put it in the result store; a store that
refuses it is waited for (``storing``), since a result Akool made is paid for."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from typing import Any

from worker.backoff import backoff
from worker.egress.download import Downloaded, DownloadError, download
from worker.jobs import ErrorCode, EventKind, Job, JobState
from worker.pipeline.schedule import (
    STORAGE_RETRY_CAP,
    Later,
    Stale,
    error_delay,
    longest_countdown,
)
from worker.services import Services
from worker.storage import StorageError

log = logging.getLogger(__name__)


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
