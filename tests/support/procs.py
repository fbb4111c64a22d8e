"""Real Celery worker processes for tests: the harness of worker/devstack/procs.py, whose
``CeleryWorker`` defaults are the tests' (``w1``, prefork x2, without mingle and gossip)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from worker.devstack import procs
from worker.devstack.procs import CELERY, ROOT, CeleryWorker, Proc

__all__ = ["CELERY", "ROOT", "TEST_ENV", "CeleryWorker", "Proc", "worker_env"]

# A fast test run: short polls, a short read timeout, a rate limit out of the way.
TEST_ENV = {
    "POLL_INITIAL_DELAY": "0.3",
    "POLL_MAX_DELAY": "2",
    "POLL_DEADLINE": "60",
    "AKOOL_READ_TIMEOUT": "3",
    "AKOOL_RATE_LIMIT": "200",
    "AKOOL_RATE_BURST": "50",
    "NOTIFY_SECRET": "test-notify-secret",
}


def worker_env(
    redis_url: str, sandbox_url: str, audio_dir: Path, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Settings for a fast test run (``TEST_ENV``, then ``extra``), loopback allowed."""
    return procs.worker_env(redis_url, sandbox_url, audio_dir, {**TEST_ENV, **(extra or {})})
