"""Following a job without polling it, against the service as production runs it (gunicorn's
gevent worker, a Celery worker, the sandbox, Redis): ``?wait=N`` holds a GET until the job ends,
the event stream sends the timeline as it is written and resumes, ETags give 304, and the result
is served (with ``Range``) behind the token."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.integration.test_web_api import procfile_web
from tests.support.procs import CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.webclient import WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TOKEN = "follow-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass(frozen=True)
class Stack:
    client: WebClient
    url: str


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def stack(
    private_redis: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("follow")
    port = free_port()
    env = worker_env(
        private_redis.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "API_TOKENS": TOKEN,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
        },
    )
    worker = CeleryWorker(env, tmp / "worker.log").start()
    web = Proc(procfile_web(), env, tmp / "web.log", "web service listening").start()
    yield Stack(WebClient(port, TOKEN), f"http://127.0.0.1:{port}")
    web.stop()
    worker.stop()


def post(stack: Stack) -> str:
    job_id = f"follow-{uuid.uuid4().hex[:8]}"
    body = {"kind": "create", "input_text": f"Follow {job_id}.", "voice_id": VOICE}
    got = stack.client.post("/v1/jobs", {**body, "job_id": job_id})
    assert got.status == 202, got.raw
    return job_id


def slow(sb: SandboxServer, seconds: float) -> None:
    sb.configure(lifecycle={"mode": "duration", "base_seconds": seconds, "jitter": 0})


def read_stream(stack: Stack, job_id: str, last_id: str | None = None) -> list[tuple[int, Any]]:
    """Every (id, event) of the job's stream, until the service ends it."""
    headers = {**AUTH, **({"Last-Event-ID": last_id} if last_id is not None else {})}
    got: list[tuple[int, Any]] = []
    with requests.get(
        f"{stack.url}/v1/jobs/{job_id}/events", headers=headers, stream=True, timeout=60
    ) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        event_id = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                event_id = int(line[4:])
            elif line.startswith("data: "):
                assert event_id is not None
                got.append((event_id, json.loads(line[6:])))
    return got


def test_wait_holds_the_get_until_the_job_ends(stack: Stack, sb: SandboxServer) -> None:
    # Given a job that takes about 3 s
    slow(sb, 3)
    job_id = post(stack)
    # When it is asked for with wait=1, then with wait=30
    started = time.monotonic()
    early = stack.client.get(f"/v1/jobs/{job_id}?wait=1")
    held = time.monotonic() - started
    final = stack.client.get(f"/v1/jobs/{job_id}?wait=30")
    waited = time.monotonic() - started
    # Then the first comes back after its second, not final; the second once the job ended
    assert early.status == 200 and early.json["job"]["state"] not in ("succeeded", "failed")
    assert 0.9 <= held < 5
    assert final.status == 200 and final.json["job"]["state"] == "succeeded"
    assert 2 < waited < 25
    # and an answer for an ended job is at once
    started = time.monotonic()
    assert stack.client.get(f"/v1/jobs/{job_id}?wait=60").status == 200
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("wait", ["61", "-1", "ten", "1.5", "99999999"])
def test_a_wait_outside_0_to_60_is_refused(stack: Stack, wait: str) -> None:
    job_id = post(stack)
    got = stack.client.get(f"/v1/jobs/{job_id}?wait={wait}")
    assert got.status == 400 and got.error["field"] == "wait"
    assert got.error["code"] == "invalid_field"


def test_a_job_get_carries_an_etag_and_if_none_match_gives_304(
    stack: Stack, sb: SandboxServer
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    job_id = post(stack)
    final = stack.client.get(f"/v1/jobs/{job_id}?wait=30")
    tag = final.headers["ETag"]
    assert final.json["job"]["state"] == "succeeded" and tag
    same = stack.client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": tag})
    assert same.status == 304 and same.raw == b"" and same.headers["ETag"] == tag
    other = stack.client.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": '"stale"'})
    assert other.status == 200 and other.json["job"]["job_id"] == job_id


def test_the_event_stream_sends_the_timeline_as_written_and_resumes(
    stack: Stack, sb: SandboxServer
) -> None:
    # Given a job that takes about 2 s, followed from its start
    slow(sb, 2)
    job_id = post(stack)
    events = read_stream(stack, job_id)
    # Then the stream sent every event of the timeline, ids 0.., and ended after the final one
    timeline = stack.client.get(f"/v1/jobs/{job_id}").json["timeline"]
    ids = [i for i, _ in events]
    assert ids == list(range(len(ids)))
    assert [e for _, e in events] == timeline[: len(events)]
    assert events[0][1]["type"] == "accepted" and events[-1][1]["type"] == "succeeded"
    # When it is resumed after the second event, it sends the rest and ends at once
    resumed = read_stream(stack, job_id, last_id="1")
    assert resumed == events[2:]
    assert read_stream(stack, job_id, last_id=str(len(events) - 1)) == []


def test_the_result_is_served_with_range_behind_the_token(stack: Stack, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    job_id = post(stack)
    summary = stack.client.get(f"/v1/jobs/{job_id}?wait=30").json["job"]
    assert summary["state"] == "succeeded" and summary["download_url"] is None
    whole = stack.client.get(f"/v1/jobs/{job_id}/audio")
    assert whole.status == 200 and whole.headers["Content-Type"].startswith("audio/")
    assert hashlib.sha256(whole.raw).hexdigest() == summary["sha256"]
    part = stack.client.get(f"/v1/jobs/{job_id}/audio", headers={"Range": "bytes=0-9"})
    assert part.status == 206 and part.raw == whole.raw[:10]
    assert part.headers["Content-Range"] == f"bytes 0-9/{len(whole.raw)}"
    refused = stack.client.get(f"/v1/jobs/{job_id}/audio", token=None)
    assert refused.status == 401 and refused.error["code"] == "unauthorized"
    missing = stack.client.get("/v1/jobs/no-such-job/audio")
    assert missing.status == 404 and missing.error["code"] == "not_found"


def test_a_job_without_a_result_yet_is_409(stack: Stack, sb: SandboxServer) -> None:
    slow(sb, 30)
    job_id = post(stack)
    got = stack.client.get(f"/v1/jobs/{job_id}/audio")
    assert got.status == 409 and got.error["code"] == "conflict"
    assert stack.client.post(f"/v1/jobs/{job_id}/cancel").status == 202
