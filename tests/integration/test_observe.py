"""Fleet statistics and metrics from a real Redis with real messages: tasks sent by name to
queues that no worker consumes (depth, oldest age, the warning), then a real Celery worker that
runs jobs against the sandbox, and its numbers read back from ``/metrics`` with
prometheus_client's own parser and from ``/v1/stats``, through the blueprint in a Flask app and
through the real ``akool-audio web`` process with its Bearer token."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from flask import Flask
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

import worker.celery  # noqa: F401  (connects the sent_at stamp, as in every process of ours)
from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.services import TEST_TOKEN, web
from tests.support.wait import until
from worker.fleet.counters import Counters
from worker.jobs import JobStore
from worker.services import rate_limiter, redis_client
from worker.web import metrics, observe, stats
from worker.web.stats import LiveWorkers, Sources, broker_app

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TIMEOUT = 60
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    """This module's own Redis: queue depths and counters are the module's alone."""
    return private_redis


@pytest.fixture(scope="module")
def settings(redis_server: RedisServer) -> Settings:
    return Settings.from_env({"REDIS_URL": redis_server.url})


@pytest.fixture(scope="module")
def src(settings: Settings) -> Sources:
    r = redis_client(settings.redis_url)
    return Sources(
        r=r,
        settings=settings,
        jobs=JobStore(r, settings),
        limiter=rate_limiter(settings, r),
        workers=LiveWorkers(broker_app(settings), ttl=0.0),  # asked afresh at every request
    )


@pytest.fixture(scope="module")
def client(src: Sources) -> Any:
    """The blueprint in a Flask app of the test's own, reading the module's Redis."""
    app = Flask(__name__)
    app.register_blueprint(observe.bp)
    observe.install(app, src)
    return app.test_client()


def scrape(client: Any) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    return parse(response.get_data(as_text=True))


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def send(caller: Celery, queue: str | None = None, name: str = "audio.create", **kw: Any) -> str:
    kwargs = {"input_text": f"Stats {uuid.uuid4().hex[:8]}.", "voice_id": VOICE}
    options: dict[str, Any] = {"queue": queue} if queue else {}
    return str(caller.send_task(name, kwargs=kwargs, **options, **kw).id)


# -- queues without workers --------------------------------------------------------------------


def test_depth_age_and_a_warning_for_a_queue_no_worker_consumes(
    redis_url: str, caller: Celery, src: Sources, client: Any
) -> None:
    # Given a caller that forgot queue="audio" (its messages land in "celery"), messages on
    # "audio" one of them with a priority (its own list), and no worker at all
    before = time.time()
    for _ in range(3):
        send(caller)
    send(caller, "audio")
    send(caller, "audio", priority=5)
    after = time.time()
    r = src.r
    assert r.llen("audio") == 1 and r.llen("audio\x06\x163") == 1  # kombu's priority list

    # When the statistics are read 100 s later
    now = after + 100
    states = stats.queues(r, stats.QUEUE_NAMES, now)

    # Then depths count every list of a queue, and the oldest message's age comes from its stamp
    assert {q: s.depth for q, s in states.items()} == {
        "audio": 2,
        "poll": 0,
        "notify": 0,
        "celery": 3,
    }
    for queue in ("audio", "celery"):
        age = states[queue].oldest_age
        assert age is not None and now - after <= age <= now - before
    assert states["poll"].oldest_age == 0.0

    # And with no live worker, both queues holding audio.* messages are named, with the fix
    doc = client.get("/v1/stats").get_json()
    assert doc["workers"] == {}
    assert doc["queues"]["celery"]["depth"] == 3 and doc["queues"]["audio"]["depth"] == 2
    by_queue = {w.split("'")[1]: w for w in doc["warnings"]}
    assert set(by_queue) == {"celery", "audio"}
    assert "3 message(s) of audio.create" in by_queue["celery"]
    assert "queue='audio'" in by_queue["celery"]
    assert "start a worker" in by_queue["audio"]

    # And a worker consuming audio,poll,notify would leave only the caller's mistake
    consuming = {"w1@host": ["audio", "notify", "poll"]}
    only = stats.warnings(r, states, consuming)
    assert len(only) == 1 and "'celery'" in only[0]

    # And /metrics shows the same depths and ages
    samples = scrape(client)
    assert sample(samples, "akool_audio_queue_depth", queue="celery") == 3
    assert sample(samples, "akool_audio_queue_depth", queue="audio") == 2
    age = sample(samples, "akool_audio_queue_oldest_age_seconds", queue="celery")
    assert age is not None and age >= 0


def test_a_message_without_our_stamp_has_no_known_age(
    redis_url: str, redis_server: RedisServer, src: Sources, client: Any
) -> None:
    # Given a message sent by another process that imports none of our code
    code = (
        "import sys; from celery import Celery; "
        "app = Celery('other', broker=sys.argv[1]); "
        "app.send_task('audio.create', kwargs={'input_text': 'x', 'voice_id': 'v'}, queue='audio')"
    )
    subprocess.run([sys.executable, "-c", code, redis_server.url], check=True, timeout=60)
    assert src.r.llen("audio") == 1

    # Then its depth counts, its age is unknown and /v1/stats says why
    doc = client.get("/v1/stats").get_json()
    audio = doc["queues"]["audio"]
    assert audio["depth"] == 1 and audio["oldest_age_seconds"] is None
    assert "no sent_at header" in audio["oldest_age_unknown"]
    samples = scrape(client)
    assert sample(samples, "akool_audio_queue_depth", queue="audio") == 1
    assert sample(samples, "akool_audio_queue_oldest_age_seconds", queue="audio") is None
    assert sample(samples, "akool_audio_queue_oldest_age_seconds", queue="poll") == 0


def test_stats_and_metrics_of_an_empty_fleet(redis_url: str, client: Any) -> None:
    doc = client.get("/v1/stats").get_json()
    assert doc["jobs"]["in_flight"] == 0 and doc["warnings"] == []
    assert doc["unacked"] == {"total": 0, "countdown": 0, "exact": True}
    assert doc["akool_last_hour"] == {"calls": 0, "errors": {}, "errors_by_endpoint": {}}
    limiter = doc["rate_limiter"]
    assert limiter["tokens"] == limiter["burst"] and limiter["penalty_factor"] == 1.0
    samples = scrape(client)
    assert sample(samples, "akool_audio_jobs_in_flight") == 0
    assert sample(samples, "akool_audio_job_duration_seconds_count") == 0
    assert sample(samples, "akool_audio_credits_total") == 0
    families = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
    assert families == {f"akool_audio_{short}" for short in metrics.METRICS}


def test_akool_errors_of_the_last_hour_come_from_the_minute_buckets(
    redis_url: str, src: Sources, client: Any
) -> None:
    # Given calls counted 61 minutes ago, 30 minutes ago and now
    now = time.time()
    clock = [now - 61 * 60]
    c = Counters(lambda: (src.r, src.settings.key_prefix), clock=lambda: clock[0])
    c.add("akool:create:1005", 7)  # outside the hour
    clock[0] = now - 30 * 60
    c.add("akool:create:1005")
    c.add("akool:detail:ReadTimeout", 2)
    c.add("akool:detail:1000", 5)
    clock[0] = now
    c.add("akool:create:1000", 3)
    assert c.flush()

    # Then the last hour holds the last two, and /metrics the all-time totals
    assert stats.akool_last_hour(src.r, src.settings.key_prefix, now) == {
        "calls": 11,
        "errors": {"1005": 1, "ReadTimeout": 2},
        "errors_by_endpoint": {"create": {"1005": 1}, "detail": {"ReadTimeout": 2}},
    }
    assert client.get("/v1/stats").get_json()["akool_last_hour"]["errors"] == {
        "1005": 1,
        "ReadTimeout": 2,
    }
    samples = scrape(client)
    assert sample(samples, "akool_audio_akool_calls_total", endpoint="create", code="1005") == 8


def test_a_redis_that_is_gone_is_a_503(settings: Settings) -> None:
    gone = Settings.from_env({"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    r = redis.Redis.from_url(gone.redis_url, decode_responses=True, socket_connect_timeout=1)
    app = Flask(__name__)
    app.register_blueprint(observe.bp)
    observe.install(app, Sources(r, gone, JobStore(r, gone), rate_limiter(gone, r)))
    for path in ("/v1/stats", "/metrics"):
        response = app.test_client().get(path)
        assert response.status_code == 503, path
        assert "Redis is unavailable" in response.get_json()["error"]["message"]


# -- a real worker running jobs ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def env(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return worker_env(redis_server.url, sb.url, tmp_path_factory.mktemp("audio"))


@pytest.fixture(scope="module")
def celery_worker(
    env: dict[str, str], redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    redis_server.client().flushall()  # what the tests above left on the queues
    w = CeleryWorker(env, tmp_path_factory.mktemp("logs") / "worker.log").start()
    yield w
    w.stop()


def test_metrics_count_the_jobs_a_real_worker_ran(
    celery_worker: CeleryWorker, caller: Celery, sb: SandboxServer, client: Any
) -> None:
    # Given three jobs that succeed after two polls and one that Akool fails
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 2})
    texts = [f"Metrics {i} {uuid.uuid4().hex[:6]}." for i in range(3)]
    texts.append("This one fails [[fail]] on purpose.")
    results = [
        caller.send_task("audio.create", kwargs={"input_text": t, "voice_id": VOICE}, queue="audio")
        for t in texts
    ]
    summaries = [r.get(timeout=TIMEOUT) for r in results]
    assert [s["state"] for s in summaries] == ["succeeded"] * 3 + ["failed"]
    requests = sb.stats()["requests"]

    # When every worker process has written its counters (each flushes every few seconds)
    def calls_by_endpoint(samples: Samples) -> dict[str, float]:
        out: dict[str, float] = {}
        for (name, labels), value in samples.items():
            if name == "akool_audio_akool_calls_total":
                endpoint = dict(labels)["endpoint"]
                out[endpoint] = out.get(endpoint, 0) + value
        return out

    def written() -> Samples:
        samples = scrape(client)
        calls = calls_by_endpoint(samples)
        done = sample(samples, "akool_audio_job_duration_seconds_count") == 4
        seen = [calls.get(e, 0) for e in ("create", "detail")] == [
            requests["create"],
            requests["detail"],
        ]
        return samples if done and seen else {}

    samples = until(written, 30, "the counts of every worker process in /metrics")
    by_endpoint = calls_by_endpoint(samples)

    # Then the numbers are the sandbox's and the job records'
    assert sample(samples, "akool_audio_jobs", state="succeeded") == 3
    assert sample(samples, "akool_audio_jobs", state="failed") == 1
    assert sample(samples, "akool_audio_jobs_in_flight") == 0
    assert sample(samples, "akool_audio_jobs_finished_total", state="succeeded") == 3
    assert sample(samples, "akool_audio_jobs_failed_total", code="akool_failed") == 1
    assert sample(samples, "akool_audio_akool_calls_total", endpoint="create", code="1000") == 4
    assert set(by_endpoint) == {"create", "detail"} and requests["create"] == 4
    assert sample(samples, "akool_audio_job_polls_sum") == requests["detail"]  # each one a poll
    assert sample(samples, "akool_audio_job_polls_bucket", le="+Inf") == 4
    assert sample(samples, "akool_audio_job_duration_seconds_bucket", le="+Inf") == 4

    # And /v1/stats agrees, names the live worker and what it consumes, and warns of nothing
    doc = client.get("/v1/stats").get_json()
    assert doc["jobs"]["by_state"]["succeeded"] == 3
    assert doc["akool_last_hour"]["calls"] == sum(by_endpoint.values())
    assert doc["akool_last_hour"]["errors"] == {}
    [(name, queues)] = doc["workers"].items()
    assert name.startswith("w1@") and queues == ["audio", "notify", "poll"]
    assert doc["queues"]["audio"]["consumers"] == [name]
    assert doc["warnings"] == []


def test_a_countdown_message_and_a_forgotten_queue_with_a_live_worker(
    celery_worker: CeleryWorker, caller: Celery, src: Sources, client: Any
) -> None:
    # Given a job whose entry task waits for a countdown, and one sent without queue="audio"
    waiting = send(caller, "audio", countdown=600)
    send(caller)

    # Then the worker holds the first (unacked, waiting for its ETA) and the second waits in
    # "celery", which the live worker does not consume
    def held() -> dict[str, Any]:
        doc: dict[str, Any] = client.get("/v1/stats").get_json()
        return doc if doc["unacked"]["countdown"] == 1 else {}

    doc = until(held, 30, "the countdown message in the unacked hash")
    assert doc["unacked"]["total"] >= 1 and doc["unacked"]["exact"]
    assert doc["queues"]["celery"]["depth"] == 1
    [warning] = doc["warnings"]
    assert "1 message(s) of audio.create wait in queue 'celery'" in warning
    assert "queue='audio'" in warning
    assert waiting not in json.dumps(doc)  # task ids are not statistics
    samples = scrape(client)
    assert (sample(samples, "akool_audio_unacked_messages") or 0) >= 1
    src.r.delete("celery")


# -- the real service process ------------------------------------------------------------------


def get(url: str, token: str | None) -> tuple[int, str, str]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def test_the_web_service_serves_both_behind_its_token(
    celery_worker: CeleryWorker, env: dict[str, str], tmp_path: Path, client: Any
) -> None:
    port = free_port()
    service = web(env, tmp_path / "web.log", port).start()
    try:
        base = f"http://127.0.0.1:{port}"
        for path in ("/v1/stats", "/metrics"):
            assert get(base + path, None)[0] == 401
            assert get(base + path, "wrong-token-0123456789")[0] == 401
        status, ctype, body = get(base + "/metrics", TEST_TOKEN)
        assert status == 200 and ctype == CONTENT_TYPE_LATEST
        # The same numbers whichever host serves them (ages and limiter aside: time moves)
        same = ("akool_audio_jobs", "akool_audio_akool_calls_total", "akool_audio_job_polls_sum")
        served = {k: v for k, v in parse(body).items() if k[0] in same}
        assert served and served == {k: v for k, v in scrape(client).items() if k[0] in same}
        status, ctype, body = get(base + "/v1/stats", TEST_TOKEN)
        assert status == 200 and ctype.startswith("application/json")
        doc = json.loads(body)
        assert doc["jobs"] == client.get("/v1/stats").get_json()["jobs"]
        assert any(name.startswith("w1@") for name in doc["workers"])
        assert TEST_TOKEN not in service.text()
    finally:
        service.stop()
