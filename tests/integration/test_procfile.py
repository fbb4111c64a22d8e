"""The Procfile under honcho against a test Redis and the sandbox: worker, beat, flower and the
web service (with the webhook receiver) all start, and a job runs to completion through them."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.support.procs import worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.services import BIN, Proc
from tests.support.stack import caller_app
from tests.support.wait import until

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    """This module's own empty Redis: the Procfile's beat, worker and Flower start from nothing
    that other modules left (no RedBeat lock, schedule, queued message or learned model)."""
    return private_redis


@pytest.fixture(scope="module")
def honcho(
    redis_server: RedisServer,
    make_module_sandbox: Callable[..., SandboxServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Proc, SandboxServer, int]]:
    tmp = tmp_path_factory.mktemp("honcho")
    flower_port, webhook_port = free_port(), free_port()
    sb = make_module_sandbox(lifecycle={"mode": "duration", "base_seconds": 0.5, "jitter": 0})
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{webhook_port}",
            "WEB_PORT": str(webhook_port),
            "API_TOKENS": "honcho-api-token-0123456789",
            "FLOWER_PORT": str(flower_port),
            "FLOWER_BASIC_AUTH": "ops:honcho-pass",
            "POLL_INITIAL_DELAY": "20",
            "POLL_MAX_DELAY": "20",
            "BEAT_MAX_LOOP_INTERVAL": "1",
            "BEAT_LOCK_TIMEOUT": "5",
            "SWEEP_INTERVAL": "2",
        },
    )
    args = [str(BIN / "honcho"), "--no-colour", "start", "-f", "Procfile"]
    proc = Proc(args, env, tmp / "honcho.log", None).start()
    try:
        for ready in (" ready.", "Acquired lock", "Visit me at", "web service listening"):
            proc.wait_for(ready, 40)
        yield proc, sb, flower_port
    finally:
        proc.stop(30)


def test_a_job_runs_to_completion_under_honcho(
    honcho: tuple[Proc, SandboxServer, int], redis_server: RedisServer
) -> None:
    proc, sb, flower_port = honcho
    caller = caller_app(redis_server.url)
    try:
        summary = caller.send_task(
            "audio.create",
            kwargs={"input_text": "Started by honcho.", "voice_id": VOICE, "job_id": "honcho-1"},
            queue="audio",
        ).get(timeout=15)  # under the 20 s first poll: the webhook completed it
    finally:
        caller.close()
    assert summary["state"] == "succeeded", summary
    assert Path(summary["file"]).stat().st_size == summary["bytes"]
    assert sb.stats()["requests"]["detail"] == 0
    log = proc.text()
    assert "completed by webhook" in log
    assert "maintenance.sweep" in log  # beat's schedule reached the worker
    url = f"http://127.0.0.1:{flower_port}/api/workers?refresh=1"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def flower_lists_the_worker() -> bool:
        req = urllib.request.Request(url)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:honcho-pass").decode())
        with opener.open(req, timeout=10) as resp:
            names = json.loads(resp.read())
            return any(n.startswith("intake@") for n in names) and any(
                n.startswith("poll@") for n in names
            )

    until(flower_lists_the_worker, 20, "Flower to list both workers", interval=0.5)
    assert "honcho-pass" not in log
