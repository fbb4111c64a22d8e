"""Metadata and batches against the real service: the Procfile's gunicorn, a real Celery worker,
a real Redis and the sandbox. A job's ``metadata`` comes back in its summary, the API and its
notifications, whether it came over HTTP or as a task's kwarg; a batch answers item by item,
counts its jobs by state, lists them and cancels them."""

from __future__ import annotations

import json
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
from tests.support.stack import NotifyReceiver
from tests.support.wait import until
from tests.support.webclient import Reply, WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TOKEN = "batches-token-0123456789"
FINAL = ("succeeded", "failed", "cancelled")
TIMEOUT = 60


@dataclass(frozen=True)
class Stack:
    client: WebClient
    redis: RedisServer


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("batches")
    port = free_port()
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "API_TOKENS": TOKEN,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
        },
    )
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    worker = CeleryWorker(env, tmp / "worker.log").start()
    web = Proc([str(BIN / command[0]), *command[1:]], env, tmp / "web.log", "listening").start()
    yield Stack(WebClient(port, TOKEN), redis_server)
    web.stop()
    worker.stop()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "immediate"})


def body() -> dict[str, Any]:
    return {"kind": "create", "input_text": f"Hello {uuid.uuid4().hex[:8]}.", "voice_id": VOICE}


def job_of(stack: Stack, job_id: str) -> dict[str, Any]:
    got = stack.client.get(f"/v1/jobs/{job_id}")
    assert got.status == 200, got.raw
    return dict(got.json)


def until_final(stack: Stack, job_id: str) -> dict[str, Any]:
    def final() -> dict[str, Any]:
        doc = job_of(stack, job_id)
        return doc if doc["job"]["state"] in FINAL else {}

    return until(final, TIMEOUT, f"job {job_id} to end")


def post(stack: Stack, path: str, doc: Any) -> Reply:
    return stack.client.post(path, doc)


# -- metadata ------------------------------------------------------------------------------

META = {"order_id": "4721", "tenant": "acme", "note": "é" * 500}


def test_metadata_travels_with_a_job_posted_over_http(stack: Stack) -> None:
    # Given a job posted with metadata and a notify_url
    with NotifyReceiver() as receiver:
        got = post(stack, "/v1/jobs", {**body(), "metadata": META, "notify_url": receiver.url})
        assert got.status == 202, got.raw
        job_id = got.json["job_id"]

        # Then the API, the summary and the notification carry it
        doc = until_final(stack, job_id)
        assert doc["job"]["state"] == "succeeded"
        assert doc["job"]["metadata"] == META and doc["job"]["batch_id"] is None
        assert doc["request"]["metadata"] == META
        until(lambda: receiver.received, TIMEOUT, "the notification")
        sent = json.loads(receiver.received[0].body)
        assert sent["job_id"] == job_id and sent["metadata"] == META


def test_a_job_without_metadata_has_an_empty_object(stack: Stack) -> None:
    got = post(stack, "/v1/jobs", body())
    assert got.status == 202, got.raw
    doc = until_final(stack, got.json["job_id"])
    assert doc["job"]["metadata"] == {} and "metadata" not in doc["request"]


def test_metadata_is_a_kwarg_of_the_tasks(stack: Stack, caller: Celery) -> None:
    job_id = f"meta-task-{uuid.uuid4().hex[:6]}"
    kwargs = {"input_text": "From a task.", "voice_id": VOICE, "job_id": job_id, "metadata": META}
    summary = caller.send_task("audio.create", kwargs=kwargs, queue="audio").get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded" and summary["metadata"] == META
    refused = caller.send_task(
        "audio.create",
        kwargs={**kwargs, "job_id": f"{job_id}-bad", "metadata": {"k": 1}},
        queue="audio",
    )
    with pytest.raises(Exception, match="metadata"):
        refused.get(timeout=TIMEOUT)


@pytest.mark.parametrize(
    ("metadata", "says"),
    [
        ("order-1", "must be an object"),
        ({f"k{i}": "v" for i in range(17)}, "17 keys"),
        ({"k" * 41: "v"}, "1-40 characters"),
        ({"": "v"}, "1-40 characters"),
        ({"order_id": 4721}, "'order_id' must be a string"),
        ({"order_id": "x" * 501}, "'order_id' has 501 characters"),
    ],
)
def test_bad_metadata_is_refused_naming_it(stack: Stack, metadata: Any, says: str) -> None:
    job_id = f"meta-bad-{uuid.uuid4().hex[:6]}"
    got = post(stack, "/v1/jobs", {**body(), "job_id": job_id, "metadata": metadata})
    assert got.status == 400 and got.error["field"] == "metadata", got.raw
    assert says in got.error["message"] and got.error["message"].startswith("metadata")
    assert not stack.redis.client().exists(f"akool-audio:job:{job_id}")


def test_the_same_job_id_with_other_metadata_is_a_conflict(stack: Stack) -> None:
    job_id = f"meta-conflict-{uuid.uuid4().hex[:6]}"
    first = {**body(), "job_id": job_id, "metadata": {"order_id": "1"}}
    assert post(stack, "/v1/jobs", first).status == 202
    assert post(stack, "/v1/jobs", first).status == 200  # the same request: answered again
    other = post(stack, "/v1/jobs", {**first, "metadata": {"order_id": "2"}})
    assert other.status == 409 and other.error["field"] == "job_id"
