"""The Akool webhook receiver end to end: the sandbox sends its encrypted callbacks to a real
`akool-audio webhook` process, a real worker finishes the job. The first poll is 30 s away, so a
job done in seconds, with no detail call, was completed by the webhook."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from sandbox import DEFAULT_API_KEY, DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.services import Proc, webhook
from worker.akool.crypto import seal

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
FIRST_POLL = 30.0


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    """This module's own empty Redis (for ``caller`` too): a duration model learned by other
    modules would move the first poll."""
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Proc]]:
    tmp = tmp_path_factory.mktemp("webhook")
    port = free_port()
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "POLL_INITIAL_DELAY": str(FIRST_POLL),
            "POLL_MAX_DELAY": str(FIRST_POLL),
        },
    )
    w = CeleryWorker(env, tmp / "worker.log").start()
    hook = webhook(env, tmp / "webhook.log", port).start()
    yield f"http://127.0.0.1:{port}", hook
    hook.stop()
    w.stop()


def post(url: str, body: Any, method: str = "POST") -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data if method == "POST" else None, method=method)
    req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def test_completion_comes_from_the_webhook_before_the_first_poll(
    stack: tuple[str, Proc], sb: SandboxServer, caller: Celery, redis_server: RedisServer
) -> None:
    samples = "akool-audio:estimate:samples"
    before = redis_server.client().llen(samples)
    sb.reset()
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 0.5, "jitter": 0})
    started = time.monotonic()
    summary = caller.send_task(
        "audio.create",
        kwargs={"input_text": f"Webhook first {uuid.uuid4().hex[:6]}.", "voice_id": VOICE},
        queue="audio",
    ).get(timeout=FIRST_POLL)
    took = time.monotonic() - started
    assert summary["state"] == "succeeded", summary
    assert took < FIRST_POLL / 2, took
    stats = sb.stats()
    assert stats["requests"]["detail"] == 0  # no poll was needed
    assert stats["webhooks"]["delivered"] >= 1
    job = sb.job(summary["akool_id"])
    assert job["webhookUrl"].endswith("/akool/webhook")
    print(f"webhook completion: {took:.2f} s after enqueue (first poll due at {FIRST_POLL:g} s)")
    # The callback taught the duration model how long Akool took (no poll saw it).
    assert redis_server.client().llen(samples) == before + 1


def test_status_4_fails_the_job_at_once(
    stack: tuple[str, Proc], sb: SandboxServer, caller: Celery
) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 0.5, "jitter": 0})
    summary = caller.send_task(
        "audio.create",
        kwargs={"input_text": "This fails [[fail]] by webhook.", "voice_id": VOICE},
        queue="audio",
    ).get(timeout=FIRST_POLL / 2)
    assert summary["state"] == "failed"
    assert summary["error"]["code"] == "akool_failed"
    assert sb.stats()["requests"]["detail"] == 0


def test_forged_garbled_and_duplicate_callbacks(stack: tuple[str, Proc]) -> None:
    base, hook = stack
    url = f"{base}/akool/webhook"
    assert post(url, b"not json")[0] == 400
    assert post(url, {"signature": "x"})[0] == 400
    # Signed for another clientId / encrypted with another key: refused.
    other = seal(
        {"_id": "a" * 24, "status": 3, "url": "http://x/y"}, "someone-else-id", "k" * 32, 1
    )
    assert post(url, other.to_json())[0] == 401
    forged = seal({"_id": "a" * 24, "status": 3}, DEFAULT_CLIENT_ID, "k" * 32, 1)
    assert post(url, forged.to_json())[0] == 401
    tampered = seal({"_id": "a" * 24, "status": 3}, DEFAULT_CLIENT_ID, DEFAULT_API_KEY, 1)
    tampered_body = {**tampered.to_json(), "nonce": "other"}
    assert post(url, tampered_body)[0] == 401
    # Genuine but for an id we do not know (yet): 404, so Akool retries.
    unknown = seal(
        {"_id": "b" * 24, "status": 3, "url": "http://x"}, DEFAULT_CLIENT_ID, DEFAULT_API_KEY, 1
    )
    assert post(url, unknown.to_json())[0] == 404
    # Non-terminal statuses are acknowledged and change nothing.
    assert (
        post(
            url,
            seal({"_id": "c" * 24, "status": 2}, DEFAULT_CLIENT_ID, DEFAULT_API_KEY, 1).to_json(),
        )[0]
        == 200
    )
    assert post(url, {}, method="GET")[0] == 405
    assert post(f"{base}/healthz", {}, method="GET")[0] == 200
    log = hook.text()
    assert DEFAULT_API_KEY not in log and DEFAULT_CLIENT_ID not in log
    assert "signature does not match" in log


def test_a_repeated_callback_is_handled_once(
    stack: tuple[str, Proc], sb: SandboxServer, caller: Celery, redis_server: RedisServer
) -> None:
    base, _ = stack
    sb.reset()
    sb.configure(lifecycle={"mode": "immediate"})
    summary = caller.send_task(
        "audio.create", kwargs={"input_text": "Twice told.", "voice_id": VOICE}, queue="audio"
    ).get(timeout=FIRST_POLL / 2)
    body = seal(
        {"_id": summary["akool_id"], "status": 3, "type": "audio", "url": summary["audio_url"]},
        DEFAULT_CLIENT_ID,
        DEFAULT_API_KEY,
        int(time.time() * 1000),
    ).to_json()
    first = post(f"{base}/akool/webhook", body)
    second = post(f"{base}/akool/webhook", body)
    assert first[0] == second[0] == 200
    assert second[1]["message"] in ("duplicate", "job already succeeded")
    r = redis_server.client()
    assert r.hget(f"akool-audio:job:{summary['job_id']}", "state") == "succeeded"
