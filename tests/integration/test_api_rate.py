"""``API_RATE_LIMIT`` against the real service: two gunicorn processes (the Procfile's web, with
``WEB_CONCURRENCY=2``) share one per-token bucket in Redis for POST/DELETE under /v1; past the
burst, 429 with ``Retry-After`` and nothing recorded, while GETs and another token pass."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.support.procs import ROOT, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN
from tests.support.webclient import WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TOKEN, OTHER = "rate-token-0123456789", "rate-other-token-0123456789"


@dataclass(frozen=True)
class Stack:
    client: WebClient
    redis: RedisServer


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer,
    make_module_sandbox: Callable[..., SandboxServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("api-rate")
    sb = make_module_sandbox()
    port = free_port()
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "API_TOKENS": f"{TOKEN},{OTHER}",
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "API_RATE_LIMIT": "0.2",  # a token every 5 s: the test never sees one come back
            "API_RATE_BURST": "5",
        },
    )
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    web = Proc([str(BIN / command[0]), *command[1:]], env, tmp / "web.log", "listening").start()
    yield Stack(WebClient(port, TOKEN), redis_server)
    web.stop()


def body() -> dict[str, str]:
    return {
        "kind": "create",
        "input_text": "Rate me.",
        "voice_id": VOICE,
        "job_id": f"rate-{uuid.uuid4().hex[:8]}",
    }


def test_past_the_burst_a_token_gets_429_with_retry_after(stack: Stack) -> None:
    # Given a burst of 5 state-changing requests per token (each on a new connection, so
    # both web processes answer some)
    statuses = [stack.client.post("/v1/jobs", body()).status for _ in range(5)]
    assert statuses == [202] * 5

    # When the token sends a sixth, and a cancel
    refused_job = body()
    refused = stack.client.post("/v1/jobs", refused_job)
    cancel = stack.client.post("/v1/jobs/no-such-job/cancel")

    # Then both are 429 with Retry-After, and nothing was recorded
    for got in (refused, cancel):
        assert got.status == 429, got.raw
        assert 1 <= int(got.headers["Retry-After"]) <= 5
        assert "API_RATE_LIMIT" in got.error["message"]
    assert not stack.redis.client().exists(f"akool-audio:job:{refused_job['job_id']}")
    # And reads pass, and another token has its own bucket
    assert stack.client.get("/v1/jobs").status == 200
    assert stack.client.post("/v1/jobs", body(), token=OTHER).status == 202
