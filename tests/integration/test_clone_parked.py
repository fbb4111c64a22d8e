"""A v4 clone stage waits for its voice the way speech waits for Akool: parked in Redis and
dispatched when due, not as a countdown retry of the entry task held by a worker (issue 21).

A real worker (threads pool, the suite's fast settings, tests/support/procs.TEST_ENV, whose
clone-stage waits are about 0.5 s, so ``POLL_PARK_THRESHOLD=0.2`` to park them), real Redis,
the sandbox over HTTP, a caller that imports none of our code."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery

from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer

SAMPLE_VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox(lifecycle={"mode": "polls", "polls": 3})


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    tmp = tmp_path_factory.mktemp("clone-parked")
    env = worker_env(redis_server.url, sb.url, tmp / "audio", {"POLL_PARK_THRESHOLD": "0.2"})
    w = CeleryWorker(env, tmp / "worker.log", pool="threads", concurrency=4)
    w.start()
    yield w
    w.stop()


def test_the_clone_stage_parks_its_voice_polls_and_the_callers_result_resolves(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer, redis_server: RedisServer
) -> None:
    # Given a v4 clone whose voice Akool makes in 3 polls
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    job_id = f"clone-{uuid.uuid4().hex[:8]}"
    result = caller.send_task(
        "audio.clone",
        kwargs={
            "api": "v4",
            "job_id": job_id,
            "input_text": "My own voice, parked while it is made.",
            "source_voice_file": f"{sb.url}/previews/{SAMPLE_VOICE}.wav?take=parked",
        },
        queue="audio",
    )

    # When the job waits for its voice
    parked_while_cloning = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not result.ready():
        state = r.hget(f"akool-audio:job:{job_id}", "state")
        if state == "accepted" and r.zscore("akool-audio:parked", job_id) is not None:
            parked_while_cloning += 1
        time.sleep(0.05)

    # Then its waits were parked in Redis (not entry-task retries), the voice was polled
    # until ready, and the caller's result still resolves to the job's summary
    summary = result.get(timeout=5)
    assert summary["state"] == "succeeded", summary
    assert parked_while_cloning > 0
    events = [e for e in r.lrange(f"akool-audio:events:{job_id}", 0, -1) if "voice_polled" in e]
    assert len(events) >= 2
    assert sb.stats()["clones"] == 1
    assert r.hget(f"akool-audio:job:{job_id}", "stage") == "speaking"
