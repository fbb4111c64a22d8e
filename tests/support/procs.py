"""Real Celery worker processes for tests: the harness of worker/devstack/procs.py, whose
``CeleryWorker`` defaults are the tests' (``w1``, prefork x2, without mingle and gossip)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.stack import NOTIFY_PORTS
from worker.devstack import procs
from worker.devstack.procs import CELERY, ROOT, CeleryWorker, Proc

__all__ = ["CELERY", "ROOT", "TEST_ENV", "CeleryWorker", "Proc", "loopback_allow", "worker_env"]

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


def loopback_allow(sandbox_url: str, *more: str) -> str:
    """``ALLOW_PRIVATE_HOSTS`` of a test: on loopback, the sandbox's port, the notify receivers'
    ports (``NOTIFY_PORTS``) and ``more`` (``host:port`` entries), no other port."""
    notify = (f"127.0.0.1:{p}" for p in NOTIFY_PORTS)
    return ",".join((*procs.sandbox_allow(sandbox_url), *notify, *more))


def worker_env(
    redis_url: str,
    sandbox_url: str,
    audio_dir: Path,
    extra: Mapping[str, str] | None = None,
    *,
    allow: Sequence[str] = (),
) -> dict[str, str]:
    """Settings for a fast test run (``TEST_ENV``, then ``extra``); on loopback only the ports
    of :func:`loopback_allow` (and ``allow``) are allowed."""
    return procs.worker_env(
        redis_url,
        sandbox_url,
        audio_dir,
        {**TEST_ENV, "ALLOW_PRIVATE_HOSTS": loopback_allow(sandbox_url, *allow), **(extra or {})},
    )
