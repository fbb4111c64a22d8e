"""Tell the caller a job is final: ``notify_task`` on their Celery app and a signed POST to
``notify_url``, each at most once per job. Failures are recorded on the job and never raised:
a notification never fails a job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.backoff import backoff
from worker.egress import notify
from worker.jobs import EventKind, NotifyState
from worker.jobs.request import from_record
from worker.pipeline.finishing import URL_DONE, result_summary
from worker.pipeline.schedule import Later
from worker.services import Services

SendTask = Callable[[str, list[Any], str], None]


def deliver(svc: Services, job_id: str, attempt: int, send_task: SendTask) -> Later | None:
    """Send ``notify_task`` and POST ``notify_url``; a short lock keeps two deliveries of the
    same job from racing."""
    lock = svc.jobs.notices.lock_notify(job_id, ttl=svc.settings.notify_timeout + 30)
    if lock is None:
        return Later(5.0, "another delivery of this job is in progress")
    try:
        job = svc.jobs.get(job_id)
        request = from_record(job.request)
        summary = result_summary(svc.store, svc.settings.download_url_ttl, job)
        if request.notify_task and job.notify_task_state is not NotifyState.SENT:
            send_task(request.notify_task, [summary], request.notify_queue)
            svc.jobs.set_fields(
                job_id,
                (EventKind.NOTIFIED, {"channel": "task", "outcome": NotifyState.SENT.value}),
                notify_task_state=NotifyState.SENT,
            )
        if request.notify_url and job.notify_state not in URL_DONE:
            return _post(svc, job_id, request.notify_url, summary, attempt)
        return None
    finally:
        svc.jobs.notices.unlock_notify(job_id, lock)


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
        retry = exc.retryable and attempt + 1 < s.notify_max_attempts
        outcome = "retrying" if retry else NotifyState.UNDELIVERABLE.value
        event = _event(attempt, outcome, str(exc))
        if retry:
            delay = backoff(attempt, base=2.0, cap=min(300.0, s.visibility_timeout / 3))
            svc.jobs.set_fields(job_id, event, notify_error=str(exc), notify_attempts=attempt + 1)
            return Later(delay, str(exc))
        svc.jobs.set_fields(
            job_id,
            event,
            notify_state=NotifyState.UNDELIVERABLE,
            notify_error=str(exc),
            notify_attempts=attempt + 1,
        )
        return None
    svc.jobs.set_fields(
        job_id,
        _event(attempt, NotifyState.DELIVERED.value),
        notify_state=NotifyState.DELIVERED,
        notify_attempts=attempt + 1,
    )
    return None


def _event(
    attempt: int, outcome: str, error: str | None = None
) -> tuple[EventKind, dict[str, Any]]:
    fields: dict[str, Any] = {"channel": "url", "attempt": attempt + 1, "outcome": outcome}
    if error:
        fields["error"] = error[:300]
    return EventKind.NOTIFIED, fields
