"""The commands on jobs: ``create`` and ``clone`` (enqueue, optionally wait), ``status``,
``url`` (a fresh link to the result), ``wait`` and ``batch`` (a file of requests, watched)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from config.settings import MAX_PRESIGN_SECONDS, get_settings
from worker.cli.main import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    job_store,
    print_json,
)
from worker.jobs import JobState
from worker.pipeline import result_summary
from worker.services import services


def _summary(job: Any) -> dict[str, Any]:
    """The job's summary as callers get it, with a fresh link to a result in object storage."""
    svc = services()
    return result_summary(svc.store, svc.settings.download_url_ttl, job)


def _json_option(name: str, raw: str | None) -> Any:
    """A JSON object given on the command line (``--voice-options '{"speed": 0.9}'``)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: {name} is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise SystemExit(f"error: {name} must be a JSON object")
    return value


def _enqueue(kind: str, args: argparse.Namespace) -> int:
    """Send ``audio.<kind>`` with the options given on the command line; print the job id."""
    from worker.celery import app  # Celery and kombu: only the commands that send tasks

    jobs = job_store()
    kwargs = {
        "input_text": args.text,
        "voice_id": args.voice_id,
        "voice_url": getattr(args, "voice_url", None),
        "rate": args.rate,
        "job_id": args.job_id,
        "notify_url": args.notify_url,
        "api": args.api,
        "voice_options": _json_option("--voice-options", args.voice_options),
        "language_code": args.language_code,
        "extra_options": _json_option("--extra-options", args.extra_options),
        "voice_model_name": getattr(args, "voice_model_name", None),
        "clone_options": _json_option("--clone-options", getattr(args, "clone_options", None)),
    }
    result = app.send_task(
        f"audio.{kind}", kwargs={k: v for k, v in kwargs.items() if v is not None}
    )
    job_id = args.job_id or result.id
    print(job_id)
    if not args.wait:
        return EXIT_OK
    return _wait(jobs, job_id, args.timeout)


def cmd_create(args: argparse.Namespace) -> int:
    return _enqueue("create", args)


def cmd_clone(args: argparse.Namespace) -> int:
    return _enqueue("clone", args)


def cmd_status(args: argparse.Namespace) -> int:
    job = job_store().find(args.job_id)
    if job is None:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    print_json(
        {
            **_summary(job),
            "akool_status": job.akool_status,
            "polls": job.polls,
            "submit_attempts": job.submit_attempts,
            "created_at": job.created_at,
            "updated_at": job.updated_at,
            "completed_at": job.completed_at,
            "storage_error": job.storage_error,
        }
    )
    return EXIT_OK


def cmd_url(args: argparse.Namespace) -> int:
    """Print a fresh link to a job's stored result (a presigned GET), or its path when the
    result is in a local directory."""
    s = get_settings()
    ttl = s.download_url_ttl if args.ttl is None else args.ttl
    if not 0 < ttl <= MAX_PRESIGN_SECONDS:
        print(f"--ttl must be 1 to {MAX_PRESIGN_SECONDS} s (7 days)", file=sys.stderr)
        return EXIT_USAGE
    job = job_store().find(args.job_id)
    if job is None:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    if job.state is not JobState.SUCCEEDED or not job.location:
        print(f"job {job.job_id} has no stored result (state {job.state.value})", file=sys.stderr)
        return EXIT_FAILED
    link = services().store.download_url(job.location, ttl)
    if link is None and not job.location.startswith("/"):
        print(
            f"the result is at {job.location}, but AUDIO_STORE here names a local directory: "
            "set AUDIO_STORE (and S3_ENDPOINT_URL) as the workers have them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    print(link or job.location)
    return EXIT_OK


def _wait(jobs: Any, job_id: str, timeout: float) -> int:
    """Wait for a final state, printing each change of state, Akool status or poll count."""
    start = time.monotonic()
    seen: tuple[Any, ...] = ()
    while True:
        job = jobs.find(job_id)
        if job is not None:
            now = (job.state.value, job.akool_status, job.polls)
            if now != seen:
                seen = now
                print(
                    f"{time.monotonic() - start:6.1f}s  {job.state.value:11} akool status "
                    f"{job.akool_status or '-'}  polls {job.polls}",
                    file=sys.stderr,
                )
            if job.state.is_final:
                print_json(_summary(job))
                return EXIT_OK if job.state.value == "succeeded" else EXIT_FAILED
        if time.monotonic() - start > timeout:
            print(f"timed out after {timeout:g} s waiting for {job_id}", file=sys.stderr)
            return EXIT_TIMEOUT
        time.sleep(0.25)  # ok-sleep: the CLI process, not a worker slot


def cmd_wait(args: argparse.Namespace) -> int:
    return _wait(job_store(), args.job_id, args.timeout)


def cmd_batch(args: argparse.Namespace) -> int:
    from worker.celery import app  # as in _enqueue
    from worker.cli import batch  # rich: only this command draws its progress

    try:
        items = batch.load(Path(args.file))
    except (OSError, batch.BatchFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    outcome = batch.run(
        lambda name, kw: app.send_task(name, kwargs=kw), job_store(), items, timeout=args.timeout
    )
    batch.show(outcome.records)
    print(
        f"\n{len(outcome.succeeded)} succeeded, {len(outcome.failed)} failed, "
        f"{len(outcome.cancelled)} cancelled, {outcome.missing} never recorded"
    )
    if not outcome.finished:
        return EXIT_TIMEOUT
    return EXIT_FAILED if outcome.failed or outcome.cancelled or outcome.missing else EXIT_OK
