"""Parked polls and the dispatcher on a real Redis, and end to end with a real worker: a long
poll wait is parked in Redis (no countdown message in any worker), dispatched once when due,
never by two dispatchers at once, never faster than the shared rate limit can serve."""

from __future__ import annotations

import json
import re
import threading
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
from worker.akool.models import AudioStatus
from worker.fleet.ratelimit import RateLimiter
from worker.jobs import JobState, JobStore
from worker.jobs.parking import Dispatcher, Parked
from worker.services import rate_limiter

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
REQUEST = {"input_text": "hello", "voice_id": VOICE}


def store_and_limiter(url: str, rate: float = 1000.0) -> tuple[JobStore, RateLimiter, Settings]:
    s = Settings(redis_url=url, akool_rate_limit=rate, dispatch_batch=100)
    r = redis.Redis.from_url(url, decode_responses=True)
    return JobStore(r, s), rate_limiter(s, r), s


def park_many(jobs: JobStore, n: int, due: float, queue: str = "q-test") -> list[str]:
    ids = [f"p-{i:05d}" for i in range(n)]
    for job_id in ids:
        jobs.create(job_id, "create", REQUEST, "t")
        assert jobs.begin_submit(job_id, 30) == "go"
        jobs.record_submitted(job_id, f"ak-{job_id}", 1, None, due)  # type: ignore[arg-type]
        message = json.dumps({"headers": {"sent_at": 1.0}, "job": job_id})
        assert jobs.parking.park(job_id, due, queue, message) is Parked.PARKED
    return ids


def test_two_dispatchers_never_push_one_poll_twice(redis_url: str) -> None:
    jobs, limiter, s = store_and_limiter(redis_url)
    ids = park_many(jobs, 600, time.time() - 1)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    dispatchers = [Dispatcher(jobs.parking, limiter.penalty_key, s) for _ in range(4)]

    def drain(d: Dispatcher) -> None:
        for _ in range(40):
            d.run_once()
            r.delete("poll")  # room again: this test is about exclusivity, not the rate

    threads = [threading.Thread(target=drain, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pushed = [json.loads(m)["job"] for m in r.lrange("q-test", 0, -1)]
    assert sorted(pushed) == ids  # each exactly once
    assert sum(d.moved for d in dispatchers) == 600
    assert r.zcard(jobs.parking.parked_key) == 0
    assert r.hlen(jobs.parking.parked_messages_key) == 0
    # The dispatched message says when it was sent, not when it was parked.
    assert json.loads(r.lindex("q-test", 0))["headers"]["sent_at"] > 1.0


def test_nothing_is_dispatched_before_it_is_due(redis_url: str) -> None:
    jobs, limiter, s = store_and_limiter(redis_url)
    park_many(jobs, 5, time.time() + 30)
    moved, wait = Dispatcher(jobs.parking, limiter.penalty_key, s).run_once()
    assert moved == 0
    assert wait is not None and 28 < wait <= 30


def test_the_queue_holds_no_more_than_the_shared_rate_can_serve(redis_url: str) -> None:
    jobs, limiter, s = store_and_limiter(redis_url, rate=5.0)  # 5 calls/s x 2 s = 10
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    park_many(jobs, 30, time.time() - 1, queue="poll")
    d = Dispatcher(jobs.parking, limiter.penalty_key, s)
    assert d.run_once()[0] == 10
    assert d.run_once()[0] == 0  # the queue is full for the next 2 s of the rate
    for _ in range(4):
        r.rpop("poll")  # four polls were served
    assert d.run_once()[0] == 4
    r.set(limiter.penalty_key, "0.5")  # Akool said 1005: the fleet runs at half the rate
    r.delete("poll")
    assert d.run_once()[0] == 5
    assert r.zcard(jobs.parking.parked_key) == 11


def test_a_job_that_moved_on_is_not_parked(redis_url: str) -> None:
    jobs, _, _ = store_and_limiter(redis_url)
    jobs.create("m-1", "create", REQUEST, "t")
    assert jobs.parking.park("m-1", time.time(), "poll", "{}") is Parked.MOVED_ON  # accepted only
    assert jobs.parking.parked_due("m-1") is None


def test_a_parked_message_is_built_once_per_attempt(redis_url: str) -> None:
    jobs, limiter, s = store_and_limiter(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    (job_id,) = park_many(jobs, 1, time.time() - 1, queue="q-once")
    # kombu's envelope, shortened: the parts the dispatcher edits
    message = json.dumps({"headers": {"sent_at": 1.0}, "properties": {"delivery_tag": "tag-a"}})
    assert jobs.parking.park(job_id, time.time() - 1, "q-once", message) is Parked.PARKED
    d = Dispatcher(jobs.parking, limiter.penalty_key, s)
    tags = []
    for _ in range(3):
        assert d.run_once()[0] == 1
        tags.append(json.loads(r.rpop("q-once"))["properties"]["delivery_tag"])
        # The next wait sends no message: the job's kept one goes again, as a new delivery
        assert jobs.parking.park(job_id, time.time() - 1) is Parked.PARKED
    assert tags == ["tag-a.1", "tag-a.2", "tag-a.3"]
    # A job that stops waiting for Akool drops it; a new attempt must build its own
    jobs.record_poll(job_id, AudioStatus.COMPLETED, "http://x/a.mp3", time.time())
    assert r.hget(jobs.job_key(job_id), "poll_msg") is None
    assert jobs.parking.park(job_id, time.time()) is Parked.MOVED_ON


def test_a_message_parked_by_an_earlier_version_is_dispatched_once(redis_url: str) -> None:
    # Given a poll parked the old way (its own message beside the set), whose job record is
    # gone meanwhile
    jobs, limiter, s = store_and_limiter(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    message = json.dumps({"headers": {"sent_at": 1.0}, "properties": {"delivery_tag": "old-1"}})
    r.zadd(jobs.parking.parked_key, {"legacy-1": time.time() - 1})
    r.hset(jobs.parking.parked_messages_key, "legacy-1", "q-legacy\n" + message)
    # When a dispatcher runs, Then it is pushed once as it was, and nothing else is written
    assert Dispatcher(jobs.parking, limiter.penalty_key, s).run_once()[0] == 1
    pushed = json.loads(r.rpop("q-legacy"))
    assert pushed["properties"]["delivery_tag"] == "old-1"
    assert pushed["headers"]["sent_at"] > 1.0
    assert not r.exists(jobs.job_key("legacy-1"))
    assert r.hlen(jobs.parking.parked_messages_key) == 0 and r.zcard(jobs.parking.parked_key) == 0


def test_a_submitted_job_without_a_kept_message_asks_for_one(redis_url: str) -> None:
    jobs, _, _ = store_and_limiter(redis_url)
    jobs.create("n-1", "create", REQUEST, "t")
    assert jobs.begin_submit("n-1", 30) == "go"
    jobs.record_submitted("n-1", "ak-n-1", 1, None, time.time())  # type: ignore[arg-type]
    assert jobs.parking.park("n-1", time.time()) is Parked.NO_MESSAGE
    assert jobs.parking.parked_due("n-1") is None


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    tmp: Path = tmp_path_factory.mktemp("dispatch")
    # Every poll wait is parked (a threshold below the shortest wait): all polls after the
    # first go through the dispatcher.
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {"POLL_PARK_THRESHOLD": "0.2", "POLL_INITIAL_DELAY": "0.5", "POLL_MAX_DELAY": "1"},
    )
    w = CeleryWorker(env, tmp / "worker.log", pool="threads", concurrency=4).start()
    yield w
    w.stop()


def test_parked_polls_finish_jobs_end_to_end(
    worker: CeleryWorker, redis_server: RedisServer, sb: SandboxServer
) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 4})
    caller: Celery = caller_app(redis_server.url)
    try:
        results = [
            caller.send_task(
                "audio.create",
                kwargs={**REQUEST, "job_id": f"e2e-{uuid.uuid4().hex[:8]}"},
                queue="audio",
            )
            for _ in range(5)
        ]
        summaries = [r.get(timeout=60) for r in results]
    finally:
        caller.close()
    assert [s["state"] for s in summaries] == ["succeeded"] * 5
    jobs, _, _ = store_and_limiter(redis_server.url)
    for s in summaries:
        events = [e["type"] for e in jobs.timeline.events(s["job_id"])]
        assert events.count("poll") == 4, events
        assert jobs.get(s["job_id"]).state is JobState.SUCCEEDED
    r = redis.Redis.from_url(redis_server.url)
    assert r.zcard(jobs.parking.parked_key) == 0
    # Each job's polls after the first are deliveries of its one kept message (one task id per
    # job); four polls per job, all received by the worker: 20 deliveries of 5 poll task ids.
    polls = re.findall(r"Task audio\.poll\[([0-9a-f-]+)\] received", worker.text())
    assert len(polls) >= 20
    assert len(set(polls)) == 5
