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


# -- batches -------------------------------------------------------------------------------


def test_a_batch_answers_item_by_item_and_counts_its_jobs(stack: Stack) -> None:
    # Given a batch of three jobs, one of them bad, with the batch's own metadata
    bad = {**body(), "voice_id": None, "rate": "900%"}
    got = post(
        stack,
        "/v1/batches",
        {"jobs": [body(), bad, {**body(), "metadata": {"line": "3"}}], "metadata": {"t": "a"}},
    )

    # Then each item is answered in order; the bad one refuses only itself
    assert got.status == 202, got.raw
    batch_id = got.json["batch_id"]
    first, second, third = got.json["jobs"]
    assert first["state"] == "accepted" and third["state"] == "accepted"
    assert second["error"]["field"] == "rate" and second["error"]["code"] == "invalid_field"
    assert got.headers["Location"] == f"/v1/batches/{batch_id}"
    for item in (first, third):
        doc = until_final(stack, item["job_id"])
        assert doc["job"]["batch_id"] == batch_id and doc["job"]["state"] == "succeeded"
    assert job_of(stack, third["job_id"])["job"]["metadata"] == {"line": "3"}

    # And the batch counts them, all ended, and lists them
    seen = stack.client.get(f"/v1/batches/{batch_id}")
    assert seen.status == 200, seen.raw
    assert seen.json["total"] == 2 and seen.json["done"] is True
    assert seen.json["counts"]["succeeded"] == 2 and seen.json["metadata"] == {"t": "a"}
    listed = stack.client.get(f"/v1/jobs?batch={batch_id}")
    assert listed.status == 200, listed.raw
    assert {j["job_id"] for j in listed.json["jobs"]} == {first["job_id"], third["job_id"]}
    assert stack.client.get("/v1/batches/no-such-batch").status == 404


def test_the_same_batch_again_sends_nothing_twice_and_other_metadata_conflicts(
    stack: Stack, sb: SandboxServer
) -> None:
    batch_id = f"b-{uuid.uuid4().hex[:8]}"
    items = [{**body(), "job_id": f"{batch_id}-{i}"} for i in range(3)]
    doc = {"batch_id": batch_id, "jobs": items, "metadata": {"t": "b"}}
    assert post(stack, "/v1/batches", doc).status == 202
    for item in items:
        until_final(stack, item["job_id"])
    submissions = sb.stats()["submissions"]
    again = post(stack, "/v1/batches", doc)
    assert again.status == 200, again.raw
    assert [a["job_id"] for a in again.json["jobs"]] == [i["job_id"] for i in items]
    assert sb.stats()["submissions"] == submissions
    other = post(stack, "/v1/batches", {**doc, "metadata": {"t": "c"}})
    assert other.status == 409 and other.error["field"] == "batch_id"
    # A job of this batch posted in another batch is another request: a conflict, item alone.
    moved = post(stack, "/v1/batches", {"jobs": [items[0], body()]})
    assert moved.json["jobs"][0]["error"]["code"] == "job_id_conflict"
    assert moved.json["jobs"][1]["state"] == "accepted"


def test_the_list_of_a_batch_pages_with_a_cursor_bound_to_it(stack: Stack) -> None:
    got = post(stack, "/v1/batches", {"jobs": [body() for _ in range(5)]})
    assert got.status == 202, got.raw
    batch_id = got.json["batch_id"]
    ids = [j["job_id"] for j in got.json["jobs"]]
    first = stack.client.get(f"/v1/jobs?batch={batch_id}&limit=3").json
    rest = stack.client.get(f"/v1/jobs?batch={batch_id}&limit=3&cursor={first['next_cursor']}")
    assert rest.status == 200, rest.raw
    paged = [j["job_id"] for j in first["jobs"] + rest.json["jobs"]]
    assert paged == list(reversed(ids)) and rest.json["next_cursor"] is None
    other = stack.client.get(f"/v1/jobs?limit=3&cursor={first['next_cursor']}")
    assert other.status == 400 and other.error["field"] == "cursor"
    both = stack.client.get(f"/v1/jobs?batch={batch_id}&q=abc")
    assert both.status == 400 and both.error["field"] == "batch"


def test_cancel_a_batch(stack: Stack, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 300, "jitter": 0})
    got = post(stack, "/v1/batches", {"jobs": [body() for _ in range(3)]})
    batch_id = got.json["batch_id"]
    ids = [j["job_id"] for j in got.json["jobs"]]
    until(
        lambda: all(job_of(stack, i)["job"]["state"] == "submitted" for i in ids),
        TIMEOUT,
        "the batch's jobs to be submitted",
    )
    assert stack.client.get(f"/v1/batches/{batch_id}").json["done"] is False
    cancelled = stack.client.post(f"/v1/batches/{batch_id}/cancel")
    assert cancelled.status == 202 and cancelled.json["cancel_asked"] == 3, cancelled.raw
    for job_id in ids:
        assert until_final(stack, job_id)["job"]["state"] == "cancelled"
    seen = stack.client.get(f"/v1/batches/{batch_id}").json
    assert seen["done"] is True and seen["counts"]["cancelled"] == 3


def test_a_batch_of_1000_jobs_fits_and_1001_is_refused(stack: Stack) -> None:
    items = [{**body(), "input_text": "x" * 1500} for _ in range(1001)]
    too_many = post(stack, "/v1/batches", {"jobs": items})
    assert too_many.status == 400 and too_many.error["field"] == "jobs", too_many.raw[:300]
    refused = post(stack, "/v1/batches", {"jobs": [{"kind": "create"}] * 1000})
    assert refused.status == 202, refused.raw[:300]
    assert all(a["error"]["field"] == "input_text" for a in refused.json["jobs"])
