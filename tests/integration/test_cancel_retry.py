"""Cancel and retry against real processes: a real worker, the sandbox, a real Redis, and
``akool-audio cancel|retry`` run as the operator would. Each race the issue names: cancel during
submit, during polling, during download, twice at once; a retry racing a late webhook."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.result import AsyncResult

from config.settings import Settings
from sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, VOICES, SandboxServer
from tests.support.procs import ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.stack import NotifyReceiver, caller_app
from tests.support.wait import until
from tests.support.webclient import WebClient
from worker.akool.crypto import seal
from worker.akool.models import AudioStatus
from worker.jobs import Job, JobState, JobStore
from worker.web.webhook import Receiver

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TIMEOUT = 60
CLI = [sys.executable, "-m", "worker.cli.main"]


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def env(redis_server: RedisServer, sb: SandboxServer, audio_dir: Path) -> dict[str, str]:
    return worker_env(redis_server.url, sb.url, audio_dir, {"AKOOL_READ_TIMEOUT": "10"})


@pytest.fixture(scope="module")
def worker(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryWorker]:
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


@pytest.fixture(scope="module")
def jobs(redis_server: RedisServer) -> JobStore:
    r = redis.Redis.from_url(redis_server.url, decode_responses=True)
    return JobStore(r, Settings(redis_url=redis_server.url))


@pytest.fixture(autouse=True)
def _fresh_sandbox(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 60, "jitter": 0})


def enqueue(caller: Celery, **kwargs: Any) -> tuple[str, AsyncResult]:
    job_id = f"cr-{uuid.uuid4().hex[:10]}"
    kwargs = {"input_text": "A job to cancel or retry.", "voice_id": VOICE, **kwargs}
    return job_id, caller.send_task(
        "audio.create", kwargs={**kwargs, "job_id": job_id}, queue="audio"
    )


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def reach(jobs: JobStore, job_id: str, state: JobState) -> Job:
    until(
        lambda: (j := jobs.find(job_id)) is not None and j.state is state,
        TIMEOUT,
        f"job {job_id} {state.value}",
    )
    return jobs.get(job_id)


def kinds(jobs: JobStore, job_id: str) -> list[str]:
    return [e["type"] for e in jobs.timeline.events(job_id)]


def stored_files(audio_dir: Path, job_id: str) -> list[Path]:
    return [p for p in audio_dir.iterdir() if p.name.startswith(job_id)]


def test_cancel_while_polling_ends_cancelled_and_notifies(
    worker: CeleryWorker, caller: Celery, env: dict[str, str], jobs: JobStore, audio_dir: Path
) -> None:
    with NotifyReceiver() as receiver:
        job_id, result = enqueue(caller, notify_url=receiver.url)
        job = reach(jobs, job_id, JobState.SUBMITTED)
        done = cli(env, "cancel", job_id)
        assert done.returncode == 0, done.stderr
        assert "cancelled." in done.stdout
        assert f"Akool job {job.akool_id} may still finish and be charged" in done.stdout
        summary = result.get(timeout=TIMEOUT)
        assert summary["state"] == "cancelled"
        assert summary["error"]["code"] == "cancelled"
        until(lambda: receiver.received, TIMEOUT, "the notification")
        assert json.loads(receiver.received[0].body)["state"] == "cancelled"
    assert jobs.get(job_id).akool_id == job.akool_id  # the paid Akool job stays on record
    events = kinds(jobs, job_id)
    assert events.index("cancel_requested") < events.index("cancelled")
    assert "notified" in events
    assert stored_files(audio_dir, job_id) == []


def test_cancel_during_submit_records_the_akool_job_and_sends_nothing_more(
    worker: CeleryWorker, caller: Celery, env: dict[str, str], jobs: JobStore, sb: SandboxServer
) -> None:
    # Slow, but under this module's AKOOL_READ_TIMEOUT (10 s): the answer arrives after the
    # cancel.
    sb.configure(faults=[{"endpoint": "create", "kind": "slow", "delay": 4, "times": 1}])
    job_id, result = enqueue(caller)
    reach(jobs, job_id, JobState.SUBMITTING)
    done = cli(env, "cancel", job_id)
    assert done.returncode == 0, done.stderr
    assert "cancelling" in done.stdout
    assert "may still finish and charge" in done.stdout
    assert result.get(timeout=TIMEOUT)["state"] == "cancelled"
    job = jobs.get(job_id)
    assert job.akool_id is not None  # the slow create did create it: recorded, never polled
    assert sb.stats()["requests"].get("detail", 0) == 0
    assert kinds(jobs, job_id).count("submitted") == 1


# Races a 3 s slow download against a CLI process's start: alone, not beside other stacks.
@pytest.mark.serial
def test_cancel_during_download_stores_nothing(
    worker: CeleryWorker,
    caller: Celery,
    env: dict[str, str],
    jobs: JobStore,
    sb: SandboxServer,
    audio_dir: Path,
) -> None:
    sb.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "download", "kind": "slow", "delay": 3, "times": 1}],
    )
    job_id, result = enqueue(caller)
    reach(jobs, job_id, JobState.DOWNLOADING)
    done = cli(env, "cancel", job_id)
    assert done.returncode == 0, done.stderr
    assert "the download in flight stops and nothing is stored" in done.stdout
    assert result.get(timeout=TIMEOUT)["state"] == "cancelled"
    assert jobs.get(job_id).location is None
    time.sleep(1.0)  # the download step has returned (the result resolved after it)
    assert stored_files(audio_dir, job_id) == []
    assert not [p for p in audio_dir.iterdir() if job_id in p.name]  # no partial file either


def test_cancel_twice_at_once_cancels_once(
    worker: CeleryWorker, caller: Celery, env: dict[str, str], jobs: JobStore
) -> None:
    with NotifyReceiver() as receiver:
        job_id, result = enqueue(caller, notify_url=receiver.url)
        reach(jobs, job_id, JobState.SUBMITTED)
        procs = [
            subprocess.Popen(
                [*CLI, "cancel", job_id],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        outs = [(p.wait(timeout=60), *p.communicate()) for p in procs]
        assert sorted(code for code, _, _ in outs) == [0, 2], outs
        refused = next(err for code, _, err in outs if code == 2)
        assert "has already ended (cancelled)" in refused
        assert result.get(timeout=TIMEOUT)["state"] == "cancelled"
        until(lambda: receiver.received, TIMEOUT, "the notification")
        time.sleep(1.0)  # a second delivery, if there were one, would have arrived
        assert len(receiver.received) == 1
    assert kinds(jobs, job_id).count("cancelled") == 1


def test_cancel_or_retry_in_the_wrong_state_is_refused(
    worker: CeleryWorker, caller: Celery, env: dict[str, str], jobs: JobStore, sb: SandboxServer
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    job_id, result = enqueue(caller)
    assert result.get(timeout=TIMEOUT)["state"] == "succeeded"
    done = cli(env, "cancel", job_id)
    assert done.returncode == 2
    assert "has already ended (succeeded)" in done.stderr
    done = cli(env, "retry", job_id)
    assert done.returncode == 2
    assert "only a failed or cancelled job can be retried" in done.stderr
    assert cli(env, "cancel", "no-such-job").returncode == 1


def test_retry_runs_a_failed_job_again_and_keeps_every_attempt(
    worker: CeleryWorker, caller: Celery, env: dict[str, str], jobs: JobStore, sb: SandboxServer
) -> None:
    sb.configure(
        lifecycle={"mode": "immediate"},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 1}],
    )
    job_id, result = enqueue(caller)
    assert result.get(timeout=TIMEOUT)["state"] == "failed"
    first = jobs.get(job_id)
    done = cli(env, "retry", job_id)
    assert done.returncode == 0, done.stderr
    assert "attempt 2 enqueued" in done.stdout
    job = reach(jobs, job_id, JobState.SUCCEEDED)
    assert job.attempt == 2
    assert job.akool_id != first.akool_id
    (earlier,) = job.attempts
    assert earlier["attempt"] == 1
    assert earlier["akool_id"] == first.akool_id
    assert earlier["state"] == "failed"
    assert earlier["error"]["code"] == "akool_failed"
    assert sb.stats()["submissions"] == 2  # an explicit retry submits again, once
    assert "retried" in kinds(jobs, job_id)
    # Celery never overwrites a successful task result: the entry task keeps attempt 1's
    # summary (README: a retried job is followed through the API, notifications or events).
    assert AsyncResult(result.id, app=caller).get(timeout=5)["state"] == "failed"


def without_akool(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if not k.startswith("AKOOL_")}


def test_cancel_and_retry_need_no_akool_credentials(
    worker: CeleryWorker,
    caller: Celery,
    env: dict[str, str],
    jobs: JobStore,
    tmp_path: Path,
) -> None:
    # Given the web service (gunicorn, as the Procfile runs it) and the command line, both
    # without any AKOOL_* variable: a cancel or a retry never calls Akool.
    port = free_port()
    bare = without_akool(env)
    web_env = {**bare, "API_AUTH": "off", "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    gunicorn = str(Path(sys.executable).with_name(command[0]))
    web = Proc([gunicorn, *command[1:]], web_env, tmp_path / "web.log", "web service listening")
    web.start()
    try:
        client = WebClient(port, None)
        # When a job Akool has is cancelled and retried over HTTP
        job_id, result = enqueue(caller)
        reach(jobs, job_id, JobState.SUBMITTED)
        cancelled = client.post(f"/v1/jobs/{job_id}/cancel")
        assert cancelled.status == 202, cancelled.raw
        assert result.get(timeout=TIMEOUT)["state"] == "cancelled"
        retried = client.post(f"/v1/jobs/{job_id}/retry")
        assert retried.status == 202, retried.raw
        assert retried.json["job"]["attempt"] == 2
        # and another from the command line
        other, result = enqueue(caller)
        reach(jobs, other, JobState.SUBMITTED)
        done = cli(bare, "cancel", other)
        assert done.returncode == 0, done.stderr
        assert result.get(timeout=TIMEOUT)["state"] == "cancelled"
        again = cli(bare, "retry", other)
        assert again.returncode == 0, again.stderr
        assert "attempt 2 enqueued" in again.stdout
    finally:
        web.stop()
    # Then the workers run both jobs again
    assert reach(jobs, job_id, JobState.SUBMITTED).attempt == 2
    assert reach(jobs, other, JobState.SUBMITTED).attempt == 2


def test_a_late_webhook_for_an_earlier_attempt_changes_nothing(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    settings = Settings(
        redis_url=redis_url,
        akool_client_id=DEFAULT_CLIENT_ID,
        akool_client_secret=DEFAULT_CLIENT_SECRET,
    )
    store = JobStore(r, settings)
    request = {"input_text": "hi", "voice_id": VOICE}
    store.create("late-1", "create", request, "task-1")
    assert store.begin_submit("late-1", 30) == "go"
    store.record_submitted("late-1", "akool-a", AudioStatus.PROCESSING, None, time.time() + 30)
    store.fail("late-1", "akool_failed", "status 4")
    store.retry("late-1")
    assert store.begin_submit("late-1", 30) == "go"
    store.record_submitted("late-1", "akool-b", AudioStatus.PROCESSING, None, time.time() + 30)

    enqueued: list[str] = []
    receiver = Receiver(store, settings, enqueued.append)

    def callback(akool_id: str, status: int) -> Any:
        body = seal(
            {"_id": akool_id, "status": status, "type": "audio", "url": "https://a.example/x.mp3"},
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            int(time.time() * 1000),
        )
        return receiver.handle(json.dumps(body.to_json()).encode())

    late = callback("akool-a", 3)
    assert late.status == 200
    assert "stale callback" in late.message
    assert store.get("late-1").state is JobState.SUBMITTED
    assert enqueued == []
    assert callback("akool-b", 3).status == 200
    assert store.get("late-1").state is JobState.DOWNLOADING
    assert enqueued == ["late-1"]
