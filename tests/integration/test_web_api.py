"""The web service as production runs it: the Procfile's ``web`` command (gunicorn) against a
real Redis, a real Celery worker and the sandbox. Jobs posted over HTTP run to the end, the same
request again is answered from the record, every route asks for a token, and cancel and retry
work through the API. (Bad requests: test_web_refusals.py.)"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.support.procs import ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN
from tests.support.wait import until
from tests.support.webclient import Reply, WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TOKEN, SECOND = "web-api-token-0123456789", "another-api-token-0123456789"
FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Stack:
    client: WebClient
    web: Proc
    worker: CeleryWorker


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


def procfile_web() -> list[str]:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    assert command[0] == "gunicorn"
    return [str(BIN / "gunicorn"), *command[1:]]


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("web-api")
    port = free_port()
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "API_TOKENS": f"{TOKEN},{SECOND}",
            # Every route is tried with wrong tokens from one address: no throttle here
            # (tests/integration/test_web_refusals.py and tests/unit/test_web_edges.py test it).
            "AUTH_FAILURE_LIMIT": "0",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
        },
    )
    worker = CeleryWorker(env, tmp / "worker.log").start()
    web = Proc(procfile_web(), env, tmp / "web.log", "web service listening").start()
    yield Stack(WebClient(port, TOKEN), web, worker)
    web.stop()
    worker.stop()


def job_of(stack: Stack, job_id: str) -> dict[str, Any]:
    got = stack.client.get(f"/v1/jobs/{job_id}")
    assert got.status == 200, got.raw
    return dict(got.json)


def until_final(stack: Stack, job_id: str, timeout: float = 30) -> dict[str, Any]:
    def final() -> dict[str, Any]:
        doc = job_of(stack, job_id)
        return doc if doc["job"]["state"] in FINAL else {}

    return until(final, timeout, f"job {job_id} to end")


def post_job(stack: Stack, **fields: Any) -> Reply:
    body = {"kind": "create", "input_text": f"Hello {uuid.uuid4().hex[:8]}.", "voice_id": VOICE}
    return stack.client.post("/v1/jobs", {**body, **fields})


ROUTES = [
    ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/some-job"),
    ("POST", "/v1/jobs/some-job/cancel"),
    ("POST", "/v1/jobs/some-job/retry"),
    ("GET", "/v1/voices"),
    ("POST", "/v1/batches"),
    ("GET", "/v1/batches/some-batch"),
    ("POST", "/v1/batches/some-batch/cancel"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/v1/stats"),
    ("GET", "/metrics"),
    ("GET", "/v1/schedules"),
    ("POST", "/v1/schedules"),
    ("DELETE", "/v1/schedules/some-name"),
]


def test_every_route_asks_for_a_token_and_only_health_and_webhook_are_open(
    stack: Stack,
) -> None:
    c = stack.client
    for method, path in ROUTES:
        for token in (None, "wrong-token-0123456789", TOKEN[:-1], f"{TOKEN} {SECOND}"):
            got = c.call(method, path, token=token)
            assert got.status == 401, (method, path, token, got.raw)
            assert got.headers["WWW-Authenticate"] == "Bearer"
            assert got.error["message"].startswith("a valid API token is required")
            assert got.error["code"] == "unauthorized"
        for token in (TOKEN, SECOND):
            got = c.call(method, path, token=token)
            # The voice cache may be empty yet: 503 if Akool could not fill it.
            expected_5xx = 503 if path == "/v1/voices" else None
            assert got.status != 401, (method, path, got.raw)
            assert got.status < 500 or got.status == expected_5xx, (method, path, got.raw)
    for path in ("/v1/jobs", "/v1/openapi.json", "/v1/stats", "/metrics", "/v1/schedules"):
        assert c.get(path).status == 200, path
    health = c.get("/healthz", token=None)
    assert health.status == 200 and health.json == {"status": "ok", "redis": "ok"}
    hook = c.post("/akool/webhook", b"not json", token=None)
    assert hook.status == 400 and hook.json == {"status": 400, "message": "body is not JSON"}
    assert c.get("/akool/webhook", token=None).status == 405


def test_a_job_posted_over_http_runs_to_success(stack: Stack, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 0.5, "jitter": 0})
    text = f"Over HTTP {uuid.uuid4().hex[:8]}."
    got = post_job(stack, input_text=text, job_id="http-1", rate="90%")
    assert got.status == 202, got.raw
    assert got.json == {
        "job_id": "http-1",
        "state": "accepted",
        "links": {
            "self": "/v1/jobs/http-1",
            "cancel": "/v1/jobs/http-1/cancel",
            "retry": "/v1/jobs/http-1/retry",
        },
    }
    assert got.headers["Location"] == "/v1/jobs/http-1"
    doc = until_final(stack, "http-1")
    job = doc["job"]
    assert job["state"] == "succeeded", job
    assert job["bytes"] > 0 and job["attempt"] == 1 and job["kind"] == "create"
    assert job["completed_at"] >= job["submitted_at"] >= job["created_at"]
    assert doc["request"]["input_text"] == text and doc["request"]["rate"] == "90%"
    kinds = [e["type"] for e in doc["timeline"]]
    assert kinds[0] == "accepted" and kinds[-1] == "succeeded", kinds
    assert "submitted" in kinds
    assert sb.stats()["creates_by_text"][text] == 1


def test_without_a_job_id_the_service_makes_one(stack: Stack) -> None:
    got = post_job(stack)
    assert got.status == 202 and re.fullmatch(r"[0-9a-f]{32}", got.json["job_id"])
    assert until_final(stack, got.json["job_id"])["job"]["state"] == "succeeded"


def test_the_same_request_again_is_answered_from_the_record_and_another_is_a_conflict(
    stack: Stack, sb: SandboxServer
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    text = f"Only once {uuid.uuid4().hex[:8]}."
    first = post_job(stack, input_text=text, job_id="http-same")
    assert first.status == 202
    again = post_job(stack, input_text=text, job_id="http-same")
    assert again.status == 200 and again.json["job_id"] == "http-same"
    assert "nothing was sent again" in again.json["message"]
    until_final(stack, "http-same")
    after = post_job(stack, input_text=text, job_id="http-same")
    assert after.status == 200 and after.json["state"] == "succeeded"
    other = post_job(stack, input_text="Something else.", job_id="http-same")
    assert other.status == 409 and other.error["code"] == "job_id_conflict"
    assert other.error["field"] == "job_id"
    doc = job_of(stack, "http-same")
    assert [e["type"] for e in doc["timeline"]].count("accepted") == 1
    assert sb.stats()["creates_by_text"][text] == 1


def test_the_list_filters_searches_and_pages(stack: Stack, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    ids = [f"page-{i}" for i in range(5)]
    for job_id in ids:
        assert post_job(stack, job_id=job_id).status == 202
    for job_id in ids:
        until_final(stack, job_id)
    c = stack.client
    found = c.get("/v1/jobs?q=page-").json
    assert [j["job_id"] for j in found["jobs"]] == ids and found["next_cursor"] is None
    row = found["jobs"][0]
    assert set(row) == {
        "job_id", "kind", "state", "voice", "created_at", "completed_at", "polls", "attempt",
        "error_code", "duration",
    }  # fmt: skip
    assert row["voice"] == VOICE and row["state"] == "succeeded" and row["duration"] >= 0
    seen: list[str] = []
    cursor = None
    while True:
        path = "/v1/jobs?q=page-&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = c.get(path).json
        assert len(page["jobs"]) <= 2
        seen += [j["job_id"] for j in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    newest = c.get("/v1/jobs?limit=3&state=succeeded").json["jobs"]
    assert [j["job_id"] for j in newest] == ids[::-1][:3]  # newest first
    assert c.get("/v1/jobs?state=cancelling").json == {"jobs": [], "next_cursor": None}


def test_voices_come_from_the_cache_the_service_fills_on_a_miss(
    stack: Stack, caller: Celery, redis_server: RedisServer
) -> None:
    # No beat here: the empty cache is filled from Akool on the first ask.
    got = stack.client.get("/v1/voices")
    assert got.status == 200, got.raw
    assert VOICE in {v["voice_id"] for v in got.json["voices"]} and got.json["age"] >= 0
    # A fresh cache that does not know the voice: refused before anything is recorded.
    unknown = post_job(stack, voice_id="no-such-voice-here", job_id="http-unknown-voice")
    assert unknown.status == 400 and unknown.error["field"] == "voice_id"
    assert not redis_server.client().exists("akool-audio:job:http-unknown-voice")


def test_cancel_then_retry_through_the_api(stack: Stack, sb: SandboxServer) -> None:
    c = stack.client
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 300, "jitter": 0})
    assert post_job(stack, job_id="http-cancel").status == 202
    until(
        lambda: job_of(stack, "http-cancel")["job"]["state"] == "submitted",
        30,
        "the job to be submitted",
    )
    cancelled = c.post("/v1/jobs/http-cancel/cancel")
    assert cancelled.status == 202, cancelled.raw
    assert "charged" in cancelled.json["message"]  # Akool has it and cannot be told to stop
    doc = until_final(stack, "http-cancel")
    assert doc["job"]["state"] == "cancelled" and doc["job"]["error"]["code"] == "cancelled"
    again = c.post("/v1/jobs/http-cancel/cancel")
    assert again.status == 409 and again.error["code"] == "not_cancellable"

    sb.configure(lifecycle={"mode": "immediate"})
    retried = c.post("/v1/jobs/http-cancel/retry")
    assert retried.status == 202, retried.raw
    assert retried.json["job"]["attempt"] == 2
    doc = until_final(stack, "http-cancel")
    assert doc["job"]["state"] == "succeeded" and doc["job"]["attempt"] == 2
    assert [a["state"] for a in doc["job"]["attempts"]] == ["cancelled"]
    types = [e["type"] for e in doc["timeline"]]
    assert "cancel_requested" in types or "cancelled" in types
    assert "retried" in types
    refused = c.post("/v1/jobs/http-cancel/retry")
    assert refused.status == 409 and "succeeded" in refused.error["message"]
    assert refused.error["code"] == "not_retryable"


def test_cancel_and_retry_refuse_a_stale_expected_attempt(stack: Stack, sb: SandboxServer) -> None:
    # Given a failed job at attempt 1, retried once by a caller that saw attempt 1
    c = stack.client
    sb.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 2}],
    )
    assert post_job(stack, job_id="http-stale").status == 202
    assert until_final(stack, "http-stale")["job"]["state"] == "failed"
    first = c.post("/v1/jobs/http-stale/retry", {"expected_attempt": 1})
    assert first.status == 202 and first.json["job"]["attempt"] == 2, first.raw
    doc = until_final(stack, "http-stale")
    assert doc["job"]["state"] == "failed" and doc["job"]["attempt"] == 2
    submissions = sb.stats()["submissions"]

    # When another caller, still seeing attempt 1, retries (body) or cancels (query)
    stale = c.post("/v1/jobs/http-stale/retry", {"expected_attempt": 1})
    stale_cancel = c.post("/v1/jobs/http-stale/cancel?expected_attempt=1")

    # Then both are 409 stale_attempt and nothing changed or was sent
    for refused in (stale, stale_cancel):
        assert refused.status == 409, refused.raw
        assert refused.error["code"] == "stale_attempt"
        assert refused.error["field"] == "expected_attempt"
        assert "attempt 2, not 1" in refused.error["message"]
    after = job_of(stack, "http-stale")
    assert after["job"]["attempt"] == 2 and after["job"]["state"] == "failed"
    assert [e["type"] for e in after["timeline"]].count("retried") == 1
    assert sb.stats()["submissions"] == submissions  # nothing sent to Akool
    bad = c.post("/v1/jobs/http-stale/retry", {"expected_attempt": "two"})
    assert bad.status == 400 and bad.error["field"] == "expected_attempt"
    unknown = c.post("/v1/jobs/http-stale/retry", {"attempt": 2})
    assert unknown.status == 400 and unknown.error["field"] == "attempt"
    # The attempt it is at: done.
    again = c.post("/v1/jobs/http-stale/retry?expected_attempt=2")
    assert again.status == 202 and again.json["job"]["attempt"] == 3, again.raw


def test_the_log_has_one_line_per_request_and_never_a_token_or_a_query(stack: Stack) -> None:
    stack.client.get("/v1/jobs?q=secret-query-value")
    stack.client.get("/v1/jobs", token="wrong-token-0123456789")
    until(lambda: "GET /v1/jobs 401" in stack.web.text(), 10, "the access line")
    log = stack.web.text()
    assert re.search(r"akool_audio\.access: GET /v1/jobs 200 [0-9.]+ms", log)
    for secret in (TOKEN, SECOND, "wrong-token-0123456789", "secret-query-value", "Bearer"):
        assert secret not in log


def test_gunicorn_refuses_a_body_over_64_kb_and_a_bad_id_too(
    stack: Stack, redis_server: RedisServer
) -> None:
    big = post_job(stack, job_id="http-big", input_text="word " * 14000)
    assert big.status == 413 and big.error["message"] == "the body is larger than 64 KB"
    traversal = stack.client.get("/v1/jobs/..%2f..%2fetc")
    assert traversal.status == 400 and traversal.error["field"] == "job_id"
    assert not redis_server.client().exists("akool-audio:job:http-big")
