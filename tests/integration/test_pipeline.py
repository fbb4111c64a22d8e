"""The pipeline end to end: real redis-server, real `celery worker` processes, the sandbox over
HTTP, and a caller app that imports none of our code."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult

from sandbox import VOICES, SandboxServer
from tests.support.procs import CELERY, ROOT, CeleryWorker, worker_env
from tests.support.redis import RedisServer
from tests.support.stack import NotifyReceiver, caller_app
from tests.support.wait import until

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TIMEOUT = 60


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, sb: SandboxServer, audio_dir: Path) -> dict[str, str]:
    return worker_env(redis_server.url, sb.url, audio_dir)


@pytest.fixture(scope="module")
def worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
    # The production default pool (Procfile: -P threads); other modules run prefork.
    w = CeleryWorker(
        env, tmp_path_factory.mktemp("logs") / "worker.log", pool="threads", concurrency=8
    )
    w.start()
    yield w
    w.stop()


@pytest.fixture(scope="module")
def caller(redis_server: RedisServer) -> Iterator[Celery]:
    app = caller_app(redis_server.url)
    yield app
    app.close()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 2})


def enqueue(caller: Celery, name: str = "audio.create", **kwargs: Any) -> AsyncResult:
    kwargs.setdefault("input_text", f"Hello from test {uuid.uuid4().hex[:8]}.")
    if name == "audio.create":
        kwargs.setdefault("voice_id", VOICE)
    return caller.send_task(name, kwargs=kwargs, queue="audio")


def assert_file_matches_sandbox(summary: dict[str, Any], sb: SandboxServer) -> None:
    data = Path(summary["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == summary["sha256"]
    assert len(data) == summary["bytes"]
    assert sb.job(summary["akool_id"])["sha256"] == summary["sha256"]


def test_create_reaches_success_with_the_sandboxs_file(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    summary = enqueue(caller).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded", summary
    assert summary["error"] is None
    assert summary["file"].endswith(".wav")
    assert_file_matches_sandbox(summary, sb)
    assert sb.stats()["requests"]["detail"] == 2  # completed on the 2nd poll


def test_clone_from_a_voice_url_reaches_success(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    summary = enqueue(
        caller, "audio.clone", voice_url=f"{sb.url}/files/sample.mp3", rate="90%"
    ).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded", summary
    assert_file_matches_sandbox(summary, sb)
    assert sb.stats()["requests"]["clone"] == 1


def test_status_3_at_create_needs_no_poll(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    summary = enqueue(caller).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded"
    assert sb.stats()["requests"]["detail"] == 0


def test_status_4_fails_the_job_with_a_reason(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    summary = enqueue(caller, input_text="This one fails [[fail]] on purpose.").get(timeout=TIMEOUT)
    assert summary["state"] == "failed"
    assert summary["error"]["code"] == "akool_failed"
    assert "status 4" in summary["error"]["message"]
    assert summary["file"] is None


def test_transient_faults_then_success(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer, redis_server: RedisServer
) -> None:
    sb.configure(
        faults=[
            {"endpoint": "create", "kind": "http_500_html", "times": 1},
            {"endpoint": "create", "kind": "code", "code": 1005, "times": 1},
            {"endpoint": "detail", "kind": "drop", "times": 1},
            {"endpoint": "detail", "kind": "malformed_json", "times": 1},
            {"endpoint": "download", "kind": "http_500_html", "times": 1},
        ]
    )
    summary = enqueue(caller).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded", summary
    assert_file_matches_sandbox(summary, sb)
    stats = sb.stats()
    assert stats["requests"]["create"] == 3
    assert stats["requests"]["download"] == 2
    # The HTML 500 came after the POST was sent: Akool may have acted, so it is counted.
    record = redis_server.client().hgetall(f"akool-audio:job:{summary['job_id']}")
    assert record["ambiguous_submits"] == "1"
    assert record["submit_attempts"] == "3"


def test_permanent_api_error_fails_without_retrying(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    summary = enqueue(caller, voice_id="NoSuchVoice0000000000").get(timeout=TIMEOUT)
    assert summary["state"] == "failed"
    assert summary["error"]["code"] == "1003"
    assert sb.stats()["requests"]["create"] == 1


def test_expired_result_url_fails_with_a_clear_reason(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    sb.configure(faults=[{"endpoint": "download", "kind": "url_404", "probability": 1.0}])
    summary = enqueue(caller).get(timeout=TIMEOUT)
    assert summary["state"] == "failed"
    assert summary["error"]["code"] == "download_gone"
    assert "expired" in summary["error"]["message"]


def test_same_job_id_twice_submits_once(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    job_id = f"order-{uuid.uuid4().hex[:8]}"
    first = enqueue(caller, job_id=job_id, input_text="Exactly once, please.")
    second = enqueue(caller, job_id=job_id, input_text="Exactly once, please.")
    a, b = first.get(timeout=TIMEOUT), second.get(timeout=TIMEOUT)
    assert a == b
    assert a["job_id"] == job_id and a["state"] == "succeeded"
    assert sb.stats()["submissions"] == 1


def test_same_job_id_with_another_payload_is_refused(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    job_id = f"order-{uuid.uuid4().hex[:8]}"
    enqueue(caller, job_id=job_id, input_text="First text.").get(timeout=TIMEOUT)
    second = enqueue(caller, job_id=job_id, input_text="Another text.")
    with pytest.raises(Exception, match="already exists with a different request"):
        second.get(timeout=TIMEOUT)
    assert sb.stats()["submissions"] == 1


def test_bad_input_is_refused_naming_the_field_and_submits_nothing(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    bad = enqueue(caller, rate="150%")
    with pytest.raises(Exception, match="rate"):
        bad.get(timeout=TIMEOUT)
    assert bad.state == "FAILURE"
    assert sb.stats()["submissions"] == 0
    assert enqueue(caller).get(timeout=TIMEOUT)["state"] == "succeeded"


def test_celery_call_command_enqueues_by_name(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer, env: dict[str, str]
) -> None:
    kwargs = {"input_text": "Enqueued with the celery command.", "voice_id": VOICE}
    out = subprocess.run(
        [
            CELERY,
            "-b",
            env["REDIS_URL"],
            "call",
            "audio.create",
            "--kwargs",
            json.dumps(kwargs),
            "--queue",
            "audio",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    task_id = out.stdout.strip().splitlines()[-1]
    summary = AsyncResult(task_id, app=caller).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded"
    assert summary["job_id"] == task_id


def test_notify_url_gets_a_signed_post_after_retries(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    from worker.egress.notify import verify

    with NotifyReceiver(fail_first=1) as receiver:
        summary = enqueue(caller, notify_url=receiver.url).get(timeout=TIMEOUT)
        assert receiver.event.wait(30), "no notification arrived"
        got = receiver.received[0]
        assert json.loads(got.body) == summary
        assert verify("test-notify-secret", got.headers, got.body)
        assert not verify("another-secret", got.headers, got.body)


def test_notify_task_reaches_another_celery_app(
    worker: CeleryWorker,
    caller: Celery,
    sb: SandboxServer,
    env: dict[str, str],
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    other = CeleryWorker(env, tmp_path / "other.log", name="other", queues="other")
    other.args[2] = "tests.support.other_app"
    other.start()
    try:
        summary = enqueue(caller, notify_task="other.audio_done", notify_queue="other").get(
            timeout=TIMEOUT
        )
        got = redis_server.client().blpop(["other:received"], timeout=30)
        assert got is not None, other.text()[-2000:]
        assert json.loads(got[1]) == summary
    finally:
        other.stop()


def test_an_undeliverable_notification_never_fails_the_job(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer, redis_server: RedisServer
) -> None:
    with NotifyReceiver(fail_first=100, fail_status=404) as receiver:
        summary = enqueue(caller, notify_url=receiver.url).get(timeout=TIMEOUT)
        assert summary["state"] == "succeeded"
        key = f"akool-audio:job:{summary['job_id']}"
        r = redis_server.client()
        until(
            lambda: r.hget(key, "notify_state") == "undeliverable",
            10,
            f"{key} notify_state 'undeliverable'",
        )
        record = r.hgetall(key)
        assert record["notify_state"] == "undeliverable"
        assert "HTTP 404" in record["notify_error"]
        assert record["state"] == "succeeded"
        assert receiver.fail_first == 99  # a 404 is not retried
