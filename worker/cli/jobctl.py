"""``akool-audio cancel JOB`` and ``akool-audio retry JOB``: the same operations as the web
API's ``POST /v1/jobs/{id}/cancel`` and ``/retry`` (tasks/control.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from tasks.control import cancel_job, retry_job
from worker.cli.main import EXIT_FAILED, EXIT_OK, EXIT_USAGE, job_store
from worker.jobs import JobNotFound, WrongState
from worker.services import services


def _operate(job_id: str, operation: Callable[[str], str]) -> int:
    """Run ``operation`` on the job and print what it says; a job that does not exist is
    exit 1, one in the wrong state exit 2."""
    job_store()  # Unavailable, with how to start Redis, before anything else
    try:
        said = operation(job_id)
    except JobNotFound:
        print(f"no job {job_id!r}", file=sys.stderr)
        return EXIT_FAILED
    except WrongState as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"{job_id}: {said}")
    return EXIT_OK


def cmd_cancel(args: argparse.Namespace) -> int:
    return _operate(args.job_id, lambda job_id: cancel_job(services(), job_id).message)


def cmd_retry(args: argparse.Namespace) -> int:
    def retry(job_id: str) -> str:
        return f"attempt {retry_job(services(), job_id).attempt} enqueued"

    return _operate(args.job_id, retry)
