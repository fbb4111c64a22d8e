"""Flower against the test Redis with a real worker: basic auth from the environment (or a file,
through `akool-audio flower`), the job's tasks and the worker visible through Flower's HTTP API,
arguments readable but redacted, Prometheus metrics, and nothing but a bare health check
answering without credentials."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from sandbox import VOICES, SandboxServer
from tests.support.procs import CELERY, ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.services import BIN, flower
from tests.support.stack import NotifyReceiver
from tests.support.wait import until

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
USER, PASSWORD = "ops", "flower-pass-3x4mpl3"
NOTIFY_TOKEN = "notify-token-never-shown"


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer,
    make_module_sandbox: Callable[..., SandboxServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Proc, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("flower")
    sb = make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        # Polls send task events only when asked (they are most of the tasks): asked here, so
        # that their redacted arguments are checked too.
        {"FLOWER_BASIC_AUTH": f"{USER}:{PASSWORD}", "POLL_TASK_EVENTS": "true"},
    )
    port = free_port()
    fl = flower(env, tmp / "flower.log", port).start()
    try:
        w = CeleryWorker(env, tmp / "worker.log").start()
        try:
            yield f"http://127.0.0.1:{port}", fl, env
        finally:
            w.stop()
    finally:
        fl.stop()


def get(url: str, auth: bool | tuple[str, str] = True) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if auth:
        user, password = auth if isinstance(auth, tuple) else (USER, PASSWORD)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_a_jobs_tasks_and_the_worker_appear_with_redacted_arguments(
    stack: tuple[str, Proc, dict[str, str]], caller: Celery
) -> None:
    base, fl, _ = stack
    long_text = "A long announcement. " * 20
    with NotifyReceiver() as receiver:
        notify_url = receiver.url.replace("/hook", f"/hook?token={NOTIFY_TOKEN}")
        # Given Flower sees the worker, when a job runs (sent by a backend without our code)
        until(
            lambda: b"w1@" in get(f"{base}/api/workers?refresh=1")[1],
            20,
            "the worker",
            interval=0.2,
        )
        summary = caller.send_task(
            "audio.create",
            kwargs={
                "input_text": long_text,
                "voice_id": VOICE,
                "job_id": "flower-job-1",
                "notify_url": notify_url,
            },
            queue="audio",
        ).get(timeout=60)
        assert summary["state"] == "succeeded"
        assert receiver.event.wait(20)

    # Then its tasks are listed with the job id in their arguments. (The entry task's id ends
    # as audio.download, which also finishes the job: Task.replace gives the chain's last step
    # the entry's id.)
    def tasks(*names: str) -> dict[str, Any]:
        status, body = get(f"{base}/api/tasks")
        got = json.loads(body) if status == 200 else {}
        return got if set(names) <= {t["name"] for t in got.values()} else {}

    listed = until(lambda: tasks("audio.poll", "audio.download"), 20, "tasks", interval=0.2)
    for t in listed.values():
        if t["name"] in ("audio.poll", "audio.download"):
            assert t["args"] == "['flower-job-1']", t
    assert NOTIFY_TOKEN not in json.dumps(listed)

    # And an entry task's kwargs are readable but shortened and with no secret.
    bad = caller.send_task(
        "audio.create",
        kwargs={
            "input_text": long_text,
            "voice_id": VOICE,
            "job_id": "flower-job-2",
            "rate": "150%",
            "notify_url": notify_url,
        },
        queue="audio",
    )
    with pytest.raises(Exception, match="rate"):
        bad.get(timeout=30)

    def failed_entry() -> Any:
        got = tasks("audio.create")
        return next((t for t in got.values() if t["state"] == "FAILURE"), None)

    entry = until(failed_entry, 20, "the failed entry task", interval=0.2)
    print("Flower shows audio.create kwargs:", entry["kwargs"])
    assert "flower-job-2" in entry["kwargs"]
    assert f"({len(long_text)} chars)" in entry["kwargs"]
    assert long_text not in entry["kwargs"]
    assert "token=***" in entry["kwargs"]
    assert NOTIFY_TOKEN not in json.dumps(tasks())

    status, body = get(f"{base}/api/workers")
    assert status == 200 and any(name.startswith("w1@") for name in json.loads(body))
    assert PASSWORD not in fl.text()


# Every kind of Flower path: pages, the API, metrics, static files, an unknown path.
CLOSED = ("/", "/workers", "/worker/w1@x", "/tasks", "/task/x", "/tasks/datatable", "/broker",
          "/api/tasks", "/api/workers", "/api/task/types", "/api/queues/length",
          "/api/task/info/x", "/metrics", "/static/css/flower.css", "/no-such-page")  # fmt: skip


def test_nothing_but_a_bare_health_check_answers_without_credentials(
    stack: tuple[str, Proc, dict[str, str]],
) -> None:
    base, _, _ = stack
    for path in CLOSED:
        assert get(f"{base}{path}", auth=False)[0] == 401, path
        assert get(f"{base}{path}", auth=("ops", "wrong-password"))[0] == 401, path
    for path in ("/api/tasks", "/metrics", "/static/css/flower.css"):
        assert get(f"{base}{path}")[0] == 200, path
    # The probe's health check stays open, and says nothing but OK.
    assert get(f"{base}/healthcheck", auth=False) == (200, b"OK")


def test_prometheus_metrics_answer_with_the_credentials(
    stack: tuple[str, Proc, dict[str, str]],
) -> None:
    base, _, _ = stack
    status, body = get(f"{base}/metrics")
    assert status == 200
    text = body.decode()
    assert "flower_events_total" in text
    assert 'flower_worker_online{worker="w1@' in text
    assert get(f"{base}/metrics", auth=False)[0] == 401  # the scraper sends basic auth
    assert "flower-job" not in text and NOTIFY_TOKEN not in text  # no arguments in it


def test_akool_audio_flower_reads_the_credential_from_a_file(
    stack: tuple[str, Proc, dict[str, str]], tmp_path: Path
) -> None:
    _, _, env = stack
    secret = tmp_path / "flower_basic_auth"
    secret.write_text(f"{USER}:{PASSWORD}\n")
    bare = {k: v for k, v in env.items() if not k.startswith("FLOWER_")}
    port = free_port()
    args = [str(BIN / "akool-audio"), "flower", "--address=127.0.0.1", f"--port={port}"]
    fl = Proc(args, {**bare, "FLOWER_BASIC_AUTH_FILE": str(secret)}, tmp_path / "fl.log",
              "Visit me at").start()  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        assert get(f"{base}/api/workers", auth=False)[0] == 401
        assert get(f"{base}/metrics", auth=False)[0] == 401
        assert get(f"{base}/api/workers")[0] == 200
        assert get(f"{base}/healthcheck", auth=False) == (200, b"OK")
    finally:
        fl.stop()
    assert PASSWORD not in fl.text()
    # Both the variable and its file: refused, naming the variable.
    both = {**bare, "FLOWER_BASIC_AUTH_FILE": str(secret), "FLOWER_BASIC_AUTH": "a:b"}
    command = [str(BIN / "akool-audio"), "flower", f"--port={free_port()}"]
    out = subprocess.run(command, cwd=ROOT, env=both, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "set FLOWER_BASIC_AUTH or FLOWER_BASIC_AUTH_FILE, not both" in out.stderr


def test_flower_refuses_to_start_without_auth(stack: tuple[str, Proc, dict[str, str]]) -> None:
    _, _, env = stack
    bare = {k: v for k, v in env.items() if not k.startswith("FLOWER_")}
    out = subprocess.run(
        [CELERY, "-A", "worker", "flower", f"--port={free_port()}", "--address=127.0.0.1"],
        cwd=ROOT,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "FLOWER_BASIC_AUTH" in out.stderr + out.stdout
