"""``akool-audio cancel JOB`` and ``akool-audio retry JOB``: the same operations as the web
API's ``POST /v1/jobs/{id}/cancel`` and ``/retry`` (tasks/control.py)."""

from __future__ import annotations

import argparse
import sys

from worker.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, _store


def cmd_cancel(args: argparse.Namespace) -> int:
    from tasks.control import cancel_job
    from worker.jobs import JobNotFound, WrongState

    _store()  # Unavailable, with how to start Redis, before anything else
    try:
        outcome = cancel_job(args.job_id)
    except JobNotFound:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    except WrongState as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.job_id}: {outcome.message}")
    return EXIT_OK


def cmd_retry(args: argparse.Namespace) -> int:
    from tasks.control import retry_job
    from worker.jobs import JobNotFound, WrongState

    _store()
    try:
        job = retry_job(args.job_id)
    except JobNotFound:
        print(f"no job {args.job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    except WrongState as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"{job.job_id}: attempt {job.attempt} enqueued")
    return EXIT_OK
