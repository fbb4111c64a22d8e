"""The fleet counters (worker/fleet/counters.py) on a real redis-server: batches into minute
buckets and all-time totals, thread safety, counts kept while Redis is away, a forked child that
counts only its own, and the hooks that feed them (Akool exchanges against the sandbox, webhook
answers of the real receiver, a finished job)."""

from __future__ import annotations

import json
import multiprocessing
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings
from sandbox import DEFAULT_API_KEY, VOICES, SandboxServer
from tests.support.redis import free_port
from worker.akool import AkoolClient
from worker.akool import errors as akool_errors
from worker.akool.client import DETAIL_PATH
from worker.akool.crypto import seal
from worker.akool.models import AudioStatus
from worker.fleet import counters
from worker.fleet.counters import Counters, bucket_key, total_key
from worker.jobs import Job, JobStore
from worker.pipeline.schedule import wait_for_token
from worker.services import build
from worker.web.metrics import METRICS, SUFFIXES, sample_names
from worker.web.webhook import Receiver

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "t"
MINUTE = 29_000_000  # an epoch minute
VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
CLIENT_ID, SECRET = "client-id-for-counters", "0123456789abcdef"


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture()
def process_counters(r: redis.Redis) -> Iterator[redis.Redis]:
    """This process's counters written to the test's Redis."""
    counters.configure(r, PREFIX)
    counters.flush()
    r.flushall()
    yield r
    counters.flush()
    counters.configure(None)  # other tests' counts are not this test's Redis's business


def test_one_batch_writes_every_minute_bucket_and_the_totals(r: redis.Redis) -> None:
    # Given counts made in two different minutes
    clock = [MINUTE * 60 + 5.0]
    c = Counters(lambda: (r, PREFIX), clock=lambda: clock[0])
    c.add("akool:create:1000")
    c.add("akool:create:1000")
    c.add_float("ratelimit:wait_seconds", 1.5)
    clock[0] += 60
    c.add("akool:create:1005", 3)
    c.add_float("ratelimit:wait_seconds", 0.25)
    r.config_resetstat()
    # When they are flushed
    assert c.flush()
    # Then one MULTI/EXEC wrote both buckets (with a TTL) and the totals
    stats = r.info("commandstats")
    assert stats["cmdstat_exec"]["calls"] == 1 and stats["cmdstat_multi"]["calls"] == 1
    first, second = bucket_key(PREFIX, MINUTE), bucket_key(PREFIX, MINUTE + 1)
    assert r.hgetall(first) == {"akool:create:1000": "2", "ratelimit:wait_seconds": "1.5"}
    assert r.hgetall(second) == {"akool:create:1005": "3", "ratelimit:wait_seconds": "0.25"}
    assert 0 < r.ttl(first) <= counters.BUCKET_TTL
    assert r.ttl(total_key(PREFIX)) == -1
    assert r.hgetall(total_key(PREFIX)) == {
        "akool:create:1000": "2",
        "akool:create:1005": "3",
        "ratelimit:wait_seconds": "1.75",
    }
    # And a flush with nothing counted sends nothing
    r.config_resetstat()
    assert c.flush() and c.pending() == 0
    assert "cmdstat_exec" not in r.info("commandstats")


def test_counts_from_many_threads_are_all_written(r: redis.Redis) -> None:
    c = Counters(lambda: (r, PREFIX))
    threads_n, adds = 8, 3000
    done = threading.Event()

    def count() -> None:
        for _ in range(adds):
            c.add("webhook:ok")
            c.observe(counters.POLLS, counters.POLL_BUCKETS, 2.0)

    def flush_often() -> None:
        while not done.is_set():
            c.flush()

    flusher = threading.Thread(target=flush_often)
    flusher.start()
    workers = [threading.Thread(target=count) for _ in range(threads_n)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    done.set()
    flusher.join()
    c.flush()
    total = r.hgetall(total_key(PREFIX))
    assert total["webhook:ok"] == str(threads_n * adds)
    assert total["job_polls:2"] == total["job_polls:_count"] == str(threads_n * adds)
    assert float(total["job_polls:_sum"]) == 2.0 * threads_n * adds


def test_counts_are_kept_while_redis_is_away(r: redis.Redis) -> None:
    gone = redis.Redis(port=free_port(), socket_connect_timeout=1)
    c = Counters(lambda: (gone, PREFIX))
    c.add("credits", 1)
    c.add("jobs_done:succeeded", 2)
    assert c.flush() is False
    assert c.pending() == 2
    c.add("jobs_done:succeeded")
    c.connect_with(lambda: (r, PREFIX))
    assert c.flush() is True
    assert r.hgetall(total_key(PREFIX)) == {"credits": "1", "jobs_done:succeeded": "3"}


def test_a_batch_redis_refuses_is_dropped_not_counted_twice(r: redis.Redis) -> None:
    r.set(total_key(PREFIX), "not a hash")
    c = Counters(lambda: (r, PREFIX))
    c.add("webhook:ok")
    assert c.flush() is False
    assert c.pending() == 0


def test_the_flusher_thread_writes_on_its_own(r: redis.Redis) -> None:
    c = Counters(lambda: (r, PREFIX), interval=0.05)
    c.start()
    try:
        c.add("webhook:duplicate")
        deadline = time.monotonic() + 10
        while r.hget(total_key(PREFIX), "webhook:duplicate") is None:
            assert time.monotonic() < deadline, "the flusher thread wrote nothing"
            time.sleep(0.02)
    finally:
        c.stop()
    assert r.hget(total_key(PREFIX), "webhook:duplicate") == "1"


def _child_counts() -> None:
    counters.akool_exchange(DETAIL_PATH, "1000")
    assert counters.flush()


def test_a_forked_child_writes_only_what_it_counted(process_counters: redis.Redis) -> None:
    r = process_counters
    counters.akool_exchange(DETAIL_PATH, "1000")  # pending in the parent
    child = multiprocessing.get_context("fork").Process(target=_child_counts)
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert r.hget(total_key(PREFIX), "akool:detail:1000") == "1"  # the child's own
    counters.flush()
    assert r.hget(total_key(PREFIX), "akool:detail:1000") == "2"


def test_akool_calls_are_counted_by_endpoint_and_code(
    process_counters: redis.Redis, sandbox: SandboxServer
) -> None:
    r = process_counters
    sandbox.configure(
        lifecycle={"mode": "polls", "polls": 5},
        faults=[{"endpoint": "create", "kind": "code", "code": 1005, "times": 1}],
    )
    with AkoolClient(sandbox.url, api_key=DEFAULT_API_KEY, get_retries=0) as client:
        client.list_voices()
        with pytest.raises(akool_errors.RateLimited):
            client.create_audio("Hello there.", VOICE)
        job = client.create_audio("Hello there.", VOICE)
        client.get_audio(job.id)
    down = AkoolClient(f"http://127.0.0.1:{free_port()}", api_key="k", get_retries=0)
    with down, pytest.raises(akool_errors.ConnectionFailed):
        down.get_audio("some-id")
    assert counters.flush()
    assert r.hgetall(total_key(PREFIX)) == {
        "akool:voices:1000": "1",
        "akool:create:1005": "1",
        "akool:create:1000": "1",
        "akool:detail:1000": "1",
        "akool:detail:ConnectionFailed": "1",
    }


@pytest.mark.parametrize(
    ("status", "message", "outcome"),
    [
        (200, "ok", "ok"),
        (200, "duplicate", "duplicate"),
        (200, "status 2 noted", "not_final"),
        (200, "job already succeeded", "already_final"),
        (200, "stale callback: attempt 2 has another akool id", "stale"),
        (200, "job record expired", "expired"),
        (400, "body is not JSON", "bad_request"),
        (401, "signature mismatch", "bad_signature"),
        (404, "unknown akool id", "unknown_id"),
        (500, "internal error", "http_500"),
    ],
)
def test_webhook_outcomes(status: int, message: str, outcome: str) -> None:
    assert counters.webhook_outcome(status, message) == outcome


def _body(payload: dict[str, Any], secret: str = SECRET) -> bytes:
    return json.dumps(seal(payload, CLIENT_ID, secret, int(time.time() * 1000)).to_json()).encode()


def test_the_receivers_answers_are_counted_by_outcome(process_counters: redis.Redis) -> None:
    r = process_counters
    url = r.connection_pool.connection_kwargs
    settings = Settings.from_env(
        {
            "REDIS_URL": f"redis://{url['host']}:{url['port']}/0",
            "KEY_PREFIX": PREFIX,
            "AKOOL_CLIENT_ID": CLIENT_ID,
            "AKOOL_CLIENT_SECRET": SECRET,
        }
    )
    jobs = JobStore(r, settings)
    jobs.create("job-1", "create", {"input_text": "Hi", "voice_id": VOICE}, "task-1")
    jobs.record_submitted("job-1", "ak-1", AudioStatus.QUEUEING, None, time.time() + 60)
    enqueued: list[str] = []
    receiver = Receiver(jobs, settings, enqueued.append)
    answers = [
        receiver.handle(b"not json"),
        receiver.handle(_body({"_id": "ak-1", "status": 4}, secret="fedcba9876543210")),
        receiver.handle(_body({"_id": "ak-unknown", "status": 3, "url": "http://x/a.wav"})),
        receiver.handle(_body({"_id": "ak-1", "status": 2})),
        receiver.handle(_body({"_id": "ak-1", "status": 4})),
        receiver.handle(_body({"_id": "ak-1", "status": 4})),
    ]
    assert [a.status for a in answers] == [400, 401, 404, 200, 200, 200]
    assert enqueued == ["job-1"]
    assert counters.flush()
    assert r.hgetall(total_key(PREFIX)) == {
        "webhook:bad_request": "1",
        "webhook:bad_signature": "1",
        "webhook:unknown_id": "1",
        "webhook:not_final": "1",
        "webhook:ok": "1",
        "webhook:duplicate": "1",
    }


def test_a_job_sent_away_by_the_rate_limit_is_counted(
    process_counters: redis.Redis, tmp_path: Path
) -> None:
    r = process_counters
    url = r.connection_pool.connection_kwargs
    env = {
        "REDIS_URL": f"redis://{url['host']}:{url['port']}/0",
        "KEY_PREFIX": PREFIX,
        "AKOOL_API_KEY": "key-for-a-limit-test",
        "AUDIO_DIR": str(tmp_path),
        "AKOOL_RATE_LIMIT": "0.5",
        "AKOOL_RATE_BURST": "1",
    }
    svc = build(Settings.from_env(env))
    try:
        assert wait_for_token(svc, "first") is None  # the one token of the burst
        later = wait_for_token(svc, "second")
        assert later is not None and later.countdown > 0
        assert wait_for_token(svc, "third") is not None
    finally:
        svc.akool.close()
        svc.http.close()
    assert counters.flush()
    total = r.hgetall(total_key(PREFIX))
    assert total[counters.RATELIMIT_WAITS] == "2"
    assert float(total[counters.RATELIMIT_WAIT_SECONDS]) >= later.countdown


def test_a_finished_job_lands_in_the_histograms(process_counters: redis.Redis) -> None:
    r = process_counters
    base = {
        "job_id": "j",
        "kind": "create",
        "request": "{}",
        "created_at": "1000",
        "updated_at": "1",
    }
    done = Job.from_hash({**base, "state": "succeeded", "polls": "3", "completed_at": "1025.5"})
    failed = Job.from_hash(
        {**base, "state": "failed", "polls": "0", "completed_at": "1001", "error_code": "1003"}
    )
    counters.job_finished(done)
    counters.job_finished(failed)
    assert counters.flush()
    total = r.hgetall(total_key(PREFIX))
    assert total["jobs_done:succeeded"] == total["jobs_done:failed"] == "1"
    assert total["jobs_failed:1003"] == "1"
    assert total["job_duration:30"] == total["job_duration:5"] == "1"  # 25.5 s and 1 s
    assert total["job_duration:_count"] == "2" and float(total["job_duration:_sum"]) == 26.5
    assert total["job_polls:3"] == total["job_polls:0"] == "1"
    assert float(total["job_polls:_sum"]) == 3.0


def test_the_grafana_dashboard_queries_what_the_collector_exposes() -> None:
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    [variable] = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["query"] == "prometheus"
    source = {"type": "prometheus", "uid": "${" + variable["name"] + "}"}
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    exposed, used = sample_names(), set()
    for panel in panels:
        assert panel["datasource"] == source and panel["targets"], panel["title"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"] == source
            names = set(re.findall(r"\bakool_audio_[a-z_]+", target["expr"]))
            assert names and names <= exposed, (panel["title"], names - exposed)
            used |= names
    for short, (kind, _) in METRICS.items():
        shown = {f"akool_audio_{short}{suffix}" for suffix in SUFFIXES[kind]} & used
        assert shown, f"no panel shows akool_audio_{short}"
