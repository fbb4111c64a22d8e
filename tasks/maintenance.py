"""Maintenance tasks fired by beat (config/beat.py): sweep, refresh voices, purge, recurring.

Thin like the audio tasks: each calls plain functions of :mod:`worker.maintenance` and
:mod:`worker.fleet.voicecache`, then enqueues what they decided. Each run's report is kept in
Redis (:mod:`worker.maintenance.reports`).
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task

from config.celeryconfig import QUEUE_AUDIO
from tasks.base import MAINTENANCE_OPTIONS, again, end_here
from tasks.chains import RESUME, continuation, parks
from worker import pipeline
from worker.akool.speech import APIS
from worker.celery import app
from worker.fleet import voicecache
from worker.jobs import ErrorCode, JobState
from worker.maintenance import recurring, retention, sweeper
from worker.services import Services, services


def _continue(svc: Services, job_id: str) -> None:
    """Enqueue the rest of a job's chain from its record (each step carries its own queue)."""
    job = svc.jobs.find(job_id)
    if job is None:
        return
    now = time.time()
    continuation(job, (svc.jobs.due(job_id) or now) - now).apply_async()


@app.task(name=RESUME, **MAINTENANCE_OPTIONS)
def resume(self: Task, job_id: str) -> str:
    """Submit a job the sweeper found unsubmitted (lease-guarded), then continue its chain."""
    svc = services()
    later = pipeline.submit(svc, job_id)
    if later is not None:
        if parks(svc, later):  # a v4 clone stage waits for its voice in Redis
            end_here(self)
            return job_id
        again(self, later)
    job = svc.jobs.get(job_id)
    if job.state in (JobState.ACCEPTED, JobState.SUBMITTING):
        return job_id  # still not submitted (busy lease): the next sweep looks again
    _continue(svc, job_id)
    return job_id


@app.task(name="maintenance.sweep", **MAINTENANCE_OPTIONS)
def sweep(self: Task) -> dict[str, Any]:
    svc = services()
    s = svc.settings
    report = sweeper.sweep(svc.jobs, s.sweep_grace, s.sweep_grace + s.task_time_limit)
    for action, ids in report.actions.items():
        for job_id in ids:
            _act(svc, sweeper.Action(action), job_id)
    return svc.reports.record("sweep", {"checked": report.checked, **report.counts()})


def _act(svc: Services, action: sweeper.Action, job_id: str) -> None:
    if action in (sweeper.Action.PRUNE, sweeper.Action.SKIP):
        return
    if action is sweeper.Action.CANCEL:
        svc.jobs.cancel(job_id, force=True)
    if action is sweeper.Action.POLL:
        svc.jobs.parking.unpark(job_id)  # the sweeper's chain replaces a parked one
    if action is sweeper.Action.FAIL:
        job = svc.jobs.find(job_id)
        if job is not None and job.state.is_fetching:
            svc.jobs.fail(
                job_id,
                ErrorCode.DOWNLOAD_STALLED,
                f"the download made no progress after {sweeper.MAX_DOWNLOAD_SWEEPS} restarts",
            )
        else:
            svc.jobs.fail(
                job_id,
                ErrorCode.DEADLINE,
                "the job was never submitted to Akool before its deadline",
            )
    _continue(svc, job_id)


@app.task(name="maintenance.refresh_voices", **MAINTENANCE_OPTIONS)
def refresh_voices(self: Task) -> dict[str, Any]:
    svc = services()
    counts, wait = voicecache.refresh(svc.voices, svc.akool, svc.limiter)
    if wait > 0:
        again(self, pipeline.Later(wait, "rate limit"))
    report = {api.voices_report: counts.get(name, 0) for name, api in APIS.items()}
    return svc.reports.record("voices", report)


@app.task(name="maintenance.purge", **MAINTENANCE_OPTIONS)
def purge(self: Task) -> dict[str, Any]:
    svc = services()
    s = svc.settings
    got = retention.purge(svc.jobs, svc.store, s.job_retention_days, s.audio_retention_days)
    return svc.reports.record("purge", got.counts())


@app.task(name=recurring.RECURRING_TASK, **MAINTENANCE_OPTIONS)
def run_recurring(
    self: Task,
    name: str,
    task: str,
    request: dict[str, Any],
    job_id: str,
    fired_at: float | None = None,
) -> dict[str, Any]:
    """Enqueue one run of a recurring job; its rendered job id makes the run idempotent."""
    svc = services()
    rendered = recurring.render_job_id(job_id, name, fired_at or time.time())
    kwargs = {**request, "job_id": rendered}
    sent = app.send_task(task, kwargs=kwargs, queue=QUEUE_AUDIO)
    svc.reports.count_recurring_run(name)
    return svc.reports.record(f"recurring:{name}", {"job_id": rendered, "task_id": sent.id})
