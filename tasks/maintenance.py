"""Maintenance tasks fired by beat (config/beat.py): sweep, refresh voices, purge, recurring.

Thin like the audio tasks: each calls plain functions of ``worker.sweeper``,
``worker.voicecache``, ``worker.retention`` and ``worker.recurring``, then enqueues what they
decided. Each run's report is kept in Redis (``{prefix}:maintenance``, one field per task) for
``akool-audio status``-style inspection and for the tests.
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Task, chain
from celery.canvas import Signature

from config.celery import QUEUE_AUDIO
from tasks.audio import _COMMON, _again, _steps, fetch, finish
from worker import pipeline, recurring, retention, sweeper, voicecache
from worker.app import app
from worker.jobs import Job, JobState
from worker.services import Services, services

_MAINT: dict[str, Any] = {**_COMMON, "max_retries": 5}


def _report(svc: Services, name: str, report: dict[str, Any]) -> dict[str, Any]:
    """Keep the last report, and running totals of its counts (``{prefix}:maintenance:totals``,
    fields ``name.count``), so what each schedule did stays visible between runs."""
    report = {"at": time.time(), **report}
    with svc.jobs.r.pipeline(transaction=False) as pipe:
        pipe.hset(svc.settings.key("maintenance"), name, json.dumps(report))
        totals = svc.settings.key("maintenance", "totals")
        pipe.hincrby(totals, f"{name}.runs", 1)
        for field, value in report.items():
            if isinstance(value, int) and not isinstance(value, bool) and value:
                pipe.hincrby(totals, f"{name}.{field}", value)
        pipe.execute()
    return report


def continuation(job: Job) -> Signature | None:
    """The rest of a job's chain from its recorded state; the last step takes the entry task's
    id, so the caller's AsyncResult resolves to the summary even when the first chain was lost.
    """
    final = finish.si(job.job_id).set(task_id=job.owner_task_id or None)
    if job.state.is_final:
        return final
    if job.state is JobState.DOWNLOADING:
        return chain(fetch.si(job.job_id), final)
    if job.state is JobState.SUBMITTED:
        steps = _steps(job.job_id)
        return chain(*steps.tasks[:-1], final)
    return resume.si(job.job_id)


@app.task(name="maintenance.resume", **_MAINT)
def resume(self: Task, job_id: str) -> str:
    """Submit a job the sweeper found unsubmitted (lease-guarded), then continue its chain."""
    svc = services()
    later = pipeline.submit(svc, job_id)
    if later is not None:
        _again(self, later)
    job = svc.jobs.get(job_id)
    if job.state in (JobState.ACCEPTED, JobState.SUBMITTING):
        return job_id  # still not submitted (busy lease): the next sweep looks again
    nxt = continuation(job)
    if nxt is not None:
        nxt.apply_async()
    return job_id


@app.task(name="maintenance.sweep", **_MAINT)
def sweep(self: Task) -> dict[str, Any]:
    svc = services()
    s = svc.settings
    report = sweeper.sweep(svc.jobs, s.sweep_grace, s.sweep_grace + s.task_time_limit)
    for action, ids in report.actions.items():
        for job_id in ids:
            _act(svc, sweeper.Action(action), job_id)
    return _report(svc, "sweep", {"checked": report.checked, **report.counts()})


def _act(svc: Services, action: sweeper.Action, job_id: str) -> None:
    if action in (sweeper.Action.PRUNE, sweeper.Action.SKIP):
        return
    if action is sweeper.Action.FAIL:
        job = svc.jobs.find(job_id)
        if job is not None and job.state is JobState.DOWNLOADING:
            svc.jobs.fail(
                job_id,
                "download_stalled",
                f"the download made no progress after {sweeper.MAX_DOWNLOAD_SWEEPS} restarts",
            )
        else:
            svc.jobs.fail(
                job_id, "deadline", "the job was never submitted to Akool before its deadline"
            )
    job = svc.jobs.find(job_id)
    if job is None:
        return
    nxt = continuation(job)
    if nxt is not None:
        nxt.apply_async()  # each step carries its own queue (poll on "poll")


@app.task(name="maintenance.refresh_voices", **_MAINT)
def refresh_voices(self: Task) -> dict[str, Any]:
    svc = services()
    cache = voicecache.VoiceCache(svc.jobs.r, svc.settings)
    count, wait = voicecache.refresh(cache, svc.akool, svc.limiter)
    if wait > 0:
        _again(self, pipeline.Later(wait, "rate limit"))
    return _report(svc, "voices", {"voices": count})


@app.task(name="maintenance.purge", **_MAINT)
def purge(self: Task) -> dict[str, Any]:
    svc = services()
    s = svc.settings
    got = retention.purge(svc.jobs, s.audio_dir, s.job_retention_days, s.audio_retention_days)
    return _report(
        svc,
        "purge",
        {
            "files": len(got.files),
            "bytes": got.bytes,
            "records": len(got.records),
            "index": len(got.index),
        },
    )


@app.task(name="maintenance.recurring", **_MAINT)
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
    svc.jobs.r.hincrby(svc.settings.key("recurring", "runs"), name, 1)
    return _report(svc, f"recurring:{name}", {"job_id": rendered, "task_id": sent.id})
