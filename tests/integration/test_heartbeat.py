"""A SIGKILLed worker's messages come back within seconds, with the default HEARTBEAT_TIMEOUT
and VISIBILITY_TIMEOUT (900 s) and no beat: its heartbeat expires and a live worker puts back
what it held (countdown polls in its memory, the tasks it was running). Before, they waited
for the visibility timeout: 15 minutes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer
from tests.support.stack import caller_app
from tests.support.wait import until
from worker.jobs import JobState, JobStore

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
JOBS = 16


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture()
def sb(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox(lifecycle={"mode": "duration", "base_seconds": 6, "jitter": 0})


@pytest.fixture()
def env(redis_server: RedisServer, sb: SandboxServer, tmp_path: Path) -> dict[str, str]:
    e = worker_env(redis_server.url, sb.url, tmp_path / "audio")
    assert "HEARTBEAT_TIMEOUT" not in e and "VISIBILITY_TIMEOUT" not in e  # the defaults
    return e


@pytest.fixture()
def caller(redis_server: RedisServer) -> Iterator[Celery]:
    app = caller_app(redis_server.url)
    yield app
    app.close()


def test_a_killed_workers_jobs_resume_without_beat(
    env: dict[str, str],
    caller: Celery,
    redis_server: RedisServer,
    sb: SandboxServer,
    tmp_path: Path,
) -> None:
    jobs = JobStore(
        redis.Redis.from_url(redis_server.url, decode_responses=True),
        Settings(redis_url=redis_server.url),
    )
    first = CeleryWorker(env, tmp_path / "w1.log", pool="threads", concurrency=4).start()
    ids = [f"hb-{uuid.uuid4().hex[:8]}" for _ in range(JOBS)]
    for job_id in ids:
        caller.send_task(
            "audio.create",
            kwargs={"input_text": "Resume me.", "voice_id": VOICE, "job_id": job_id},
            queue="audio",
        )
    until(
        lambda: all(s == JobState.SUBMITTED.value for s in jobs.states(ids)),
        60,
        "every job submitted (its polls then wait in the worker as countdowns)",
    )
    first.kill()  # SIGKILL: its countdown polls are in kombu's unacked hash only
    killed = time.monotonic()
    second = CeleryWorker(
        env, tmp_path / "w2.log", pool="threads", concurrency=4, name="w2"
    ).start()
    try:
        until(
            lambda: all(s == JobState.SUCCEEDED.value for s in jobs.states(ids)),
            120,  # far below VISIBILITY_TIMEOUT (900 s), the only other way back
            "every job of the killed worker finished by the second worker",
        )
        took = time.monotonic() - killed
        print(f"all {JOBS} jobs done {took:.1f} s after the SIGKILL")
        assert "restored" in second.text()
        assert sb.stats()["submissions"] == JOBS  # nothing submitted twice
    finally:
        second.stop()
