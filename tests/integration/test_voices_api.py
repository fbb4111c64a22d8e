"""``/v1/voices?api=v3|v4`` on a fresh deployment: the web service (the Procfile's gunicorn) fills
an empty voice cache on the first ask, and beat fills both when it starts, so nobody waits for
its hourly refresh. Real Redis, sandbox, worker and beat."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.support.procs import ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN, beat
from tests.support.wait import until
from tests.support.webclient import WebClient
from worker.devstack.localredis import free_port

TOKEN = "voices-token-0123456789"
V3 = {v["voice_id"] for v in VOICES if v["from"] == 3}


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


def web(env: dict[str, str], log: Path) -> tuple[Proc, WebClient]:
    port = free_port()
    env = {**env, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    proc = Proc([str(BIN / command[0]), *command[1:]], env, log, "listening").start()
    return proc, WebClient(port, TOKEN)


def env_for(redis_server: RedisServer, sb: SandboxServer, tmp: Path, prefix: str) -> dict[str, str]:
    return worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {"AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID, "API_TOKENS": TOKEN, "KEY_PREFIX": prefix},
    )


def test_an_empty_cache_is_filled_by_the_web_service_on_the_first_ask(
    redis_server: RedisServer, sb: SandboxServer, tmp_path: Path
) -> None:
    # Given a fresh deployment: no beat has run, the voice caches are empty
    proc, client = web(env_for(redis_server, sb, tmp_path, "voices-web"), tmp_path / "web.log")
    try:
        # When a client asks for each API's voices
        v3 = client.get("/v1/voices")
        v4 = client.get("/v1/voices?api=v4")
        again = client.get("/v1/voices?api=v3")
    finally:
        proc.stop()
    # Then the service fetched them from Akool once and answers from the cache
    assert v3.status == 200, v3.raw
    assert {v["voice_id"] for v in v3.json["voices"]} >= V3 and v3.json["api"] == "v3"
    assert v4.status == 200, v4.raw
    assert v4.json["api"] == "v4" and v4.json["voices"]
    assert {v["voice_id"] for v in v4.json["voices"]}.isdisjoint(V3)
    assert again.status == 200 and again.json["voices"] == v3.json["voices"]


def test_a_bad_api_is_refused(redis_server: RedisServer, sb: SandboxServer, tmp_path: Path) -> None:
    proc, client = web(env_for(redis_server, sb, tmp_path, "voices-bad"), tmp_path / "web.log")
    try:
        got = client.get("/v1/voices?api=v5")
        unknown = client.get("/v1/voices?from=3")
    finally:
        proc.stop()
    assert got.status == 400 and got.error["field"] == "api", got.raw
    assert unknown.status == 400 and unknown.error["field"] == "from", unknown.raw


def test_beat_fills_both_voice_caches_when_it_starts(
    redis_server: RedisServer, sb: SandboxServer, tmp_path: Path
) -> None:
    # Given beat's hourly refresh (the default interval) and no web service asking
    env = env_for(redis_server, sb, tmp_path, "voices-beat")
    worker = CeleryWorker(env, tmp_path / "worker.log").start()
    b = beat(env, tmp_path / "beat.log").start()
    r = redis_server.client()
    try:
        # Then both caches are filled within seconds of beat's start
        until(
            lambda: r.exists("voices-beat:voices:fetched_at", "voices-beat:voices:v4:at") == 2,
            30,
            "beat's first voice refresh",
        )
    finally:
        b.stop()
        worker.stop()
