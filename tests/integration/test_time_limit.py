"""A step that runs past Celery's soft time limit runs again instead of breaking its job's chain.

Real prefork worker (time limits are enforced there), TASK_TIME_LIMIT=6 (soft limit 5 s), and
the sandbox holding a download for 5.5 s: past the soft limit, short of the hard one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.result import AsyncResult

from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer
from tests.support.wait import until

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


@pytest.fixture()
def start_worker(
    redis_url: str, sandbox: SandboxServer, tmp_path: Path
) -> Iterator[Callable[..., CeleryWorker]]:
    workers: list[CeleryWorker] = []

    def start(**extra: str) -> CeleryWorker:
        env = worker_env(
            redis_url, sandbox.url, tmp_path / "audio", {"TASK_TIME_LIMIT": "6", **extra}
        )
        w = CeleryWorker(env, tmp_path / "worker.log", pool="prefork", concurrency=1)
        workers.append(w.start())
        return w

    yield start
    for w in workers:
        w.stop()


def send(caller: Celery) -> tuple[str, AsyncResult]:
    job_id = f"tl-{uuid.uuid4().hex[:8]}"
    result = caller.send_task(
        "audio.create",
        kwargs={"input_text": f"Time limit {job_id}.", "voice_id": VOICE, "job_id": job_id},
        queue="audio",
    )
    return job_id, result


def test_a_download_past_the_soft_time_limit_is_tried_again(
    start_worker: Callable[..., CeleryWorker],
    caller: Celery,
    sandbox: SandboxServer,
    redis_server: RedisServer,
) -> None:
    worker = start_worker()
    sandbox.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "download", "kind": "slow", "delay": 5.5, "times": 1}],
    )
    _, result = send(caller)
    summary = result.get(timeout=90)
    assert summary["state"] == "succeeded", summary
    assert sandbox.stats()["requests"]["download"] == 2
    record = redis_server.client().hgetall(f"akool-audio:job:{summary['job_id']}")
    assert record["transient_errors"] == "1"
    assert "Soft time limit (5s) exceeded for audio.download" in worker.text()


def test_a_step_that_always_times_out_fails_its_job_within_the_budget(
    start_worker: Callable[..., CeleryWorker],
    caller: Celery,
    sandbox: SandboxServer,
    redis_server: RedisServer,
) -> None:
    start_worker(TRANSIENT_ERROR_BUDGET="2")
    sandbox.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "download", "kind": "slow", "delay": 5.5, "times": 3}],
    )
    job_id, _ = send(caller)
    r = redis_server.client()
    until(
        lambda: r.hget(f"akool-audio:job:{job_id}", "state") == "failed",
        90,
        f"{job_id} to fail",
        interval=0.5,
    )
    record = r.hgetall(f"akool-audio:job:{job_id}")
    assert record["state"] == "failed", record
    assert record["error_code"] == "time_limit"
    assert record["transient_errors"] == "3"
    assert sandbox.stats()["requests"]["download"] == 3
