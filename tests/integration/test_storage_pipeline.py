"""Results on S3 end to end: real workers, the sandbox, Redis, and moto's S3 server on loopback
behind a fault proxy. Jobs land whole with their metadata and a link that fetches the same
bytes; a result uploaded just before a crash is kept once; S3 down for 30 s and wrong
credentials make jobs wait in ``storing``, never lose them.

Timing settings (TASK_TIME_LIMIT 10, VISIBILITY_TIMEOUT 140) bring the longest countdown, and
so the wait between two tries of a refused result, down to 10 s (60 s with the defaults), so a
healed store is noticed within seconds here."""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests

from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.faultproxy import FaultProxy
from tests.support.procs import CeleryWorker, loopback_allow, worker_env
from tests.support.stack import caller_app
from tests.support.wait import until
from worker import pipeline as steps
from worker.jobs import ErrorCode, Job, JobState
from worker.pipeline.schedule import Later
from worker.services import Services, build
from worker.web.app import create_app

if TYPE_CHECKING:
    from celery import Celery
    from types_boto3_s3 import S3Client

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
BUCKET, PREFIX = "results", "tts"
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "test-secret-that-is-not-real-0f3c",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
FAST = {"TASK_TIME_LIMIT": "10", "VISIBILITY_TIMEOUT": "140", "SWEEP_GRACE": "5"}


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The fake credentials in this process too (the in-process steps and our own client), and
    a temporary directory of its own for the store's staging files."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in AWS.items():
            mp.setenv(name, value)
        mp.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("staging")))
        yield


@pytest.fixture()
def s3(moto_url: str, aws: None) -> Iterator[S3Client]:
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.session.Session().client("s3", endpoint_url=moto_url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    yield client
    _enforce_auth(moto_url, False)


def _enforce_auth(moto_url: str, on: bool) -> None:
    """moto checks credentials and IAM policies from now on (``on``), or never."""
    count = "0" if on else "inf"
    requests.post(f"{moto_url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()


@pytest.fixture()
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    front = FaultProxy(int(moto_url.rsplit(":", 1)[1])).start()
    yield front
    front.stop()


@pytest.fixture()
def env(
    redis_url: str, sb: SandboxServer, proxy: FaultProxy, tmp_path: Path, aws: None
) -> dict[str, str]:
    return worker_env(
        redis_url,
        sb.url,
        tmp_path / "audio",
        {
            **AWS,
            **FAST,
            "AUDIO_STORE": f"s3://{BUCKET}/{PREFIX}",
            "S3_ENDPOINT_URL": proxy.url,
            "S3_ADDRESSING_STYLE": "path",
            "DOWNLOAD_URL_TTL": "600",
            "TMPDIR": str(tmp_path / "tmp"),  # the staging directory of these workers
        },
    )


@pytest.fixture()
def stack(
    env: dict[str, str], redis_url: str, tmp_path: Path, s3: S3Client
) -> Iterator[tuple[CeleryWorker, Celery]]:
    """A worker started once the bucket exists (it checks the store at start)."""
    (tmp_path / "tmp").mkdir()
    worker = CeleryWorker(env, tmp_path / "worker.log", pool="threads", concurrency=4).start()
    caller = caller_app(redis_url)
    yield worker, caller
    caller.close()
    worker.stop()


def send(caller: Celery, kind: str = "create", **extra: Any) -> tuple[str, Any]:
    job_id = f"s3-{kind}-{uuid.uuid4().hex[:8]}"
    kwargs = {"input_text": f"Stored on S3, {job_id}.", "job_id": job_id, **extra}
    kwargs.setdefault("voice_id", None if "voice_url" in extra else VOICE)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return job_id, caller.send_task(f"audio.{kind}", kwargs=kwargs, queue="audio")


def objects(s3: S3Client) -> dict[str, dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("Contents", [])
    return {o["Key"]: dict(o) for o in listed}


def storing(job: Job | None) -> bool:
    return job is not None and job.state is JobState.STORING


def attempts(job: Job | None) -> int:
    return 0 if job is None else job.storage_attempts


def store_settings(redis_url: str, sb: SandboxServer, moto_url: str, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "REDIS_URL": redis_url,
            "AKOOL_BASE_URL": sb.url,
            "AKOOL_API_KEY": "sandbox-api-key-0123456789abcdef",
            "ALLOW_PRIVATE_HOSTS": loopback_allow(sb.url),
            "AUDIO_STORE": f"s3://{BUCKET}/{PREFIX}",
            "S3_ENDPOINT_URL": moto_url,
            "S3_ADDRESSING_STYLE": "path",
            **extra,
        }
    )


def test_create_and_clone_results_land_on_s3_whole(
    stack: tuple[CeleryWorker, Celery], s3: S3Client, sb: SandboxServer
) -> None:
    worker, caller = stack
    sent = [send(caller, "create"), send(caller, "clone", voice_url=f"{sb.url}/sample.wav")]
    for job_id, result in sent:
        summary = result.get(timeout=60)
        assert summary["state"] == "succeeded", summary
        key = f"{PREFIX}/{job_id}.wav"
        assert summary["location"] == f"s3://{BUCKET}/{key}"
        assert summary["file"] is None
        # The object holds the bytes Akool (the sandbox) served, with type and metadata.
        served = requests.get(summary["audio_url"], timeout=10).content
        got = s3.get_object(Bucket=BUCKET, Key=key)
        body = got["Body"].read()
        assert body == served
        assert hashlib.sha256(body).hexdigest() == summary["sha256"]
        assert len(body) == summary["bytes"]
        assert got["ContentType"] == "audio/wav"
        assert got["Metadata"] == {
            "sha256": summary["sha256"],
            "job_id": job_id,
            "akool_id": summary["akool_id"],
        }
        # The link in the summary fetches the same bytes (moto does not enforce its expiry).
        assert "X-Amz-Expires=600" in summary["download_url"]
        assert requests.get(summary["download_url"], timeout=10).content == body
    assert "results go to s3://results/tts" in worker.text()
    # The caller's summary carries the signed link; the worker's log (and Flower's events) show
    # it without its signature and credential.
    assert "X-Amz-Signature=" in summary["download_url"]
    log = worker.text()
    assert "X-Amz-Signature=***" in log
    assert re.search(r"X-Amz-(Signature|Credential)=(?!\*\*\*)", log) is None


def test_a_result_uploaded_just_before_a_crash_is_kept_once(
    stack: tuple[CeleryWorker, Celery],
    s3: S3Client,
    proxy: FaultProxy,
    redis_url: str,
    sb: SandboxServer,
    moto_url: str,
    tmp_path: Path,
) -> None:
    worker, caller = stack
    # Given a worker whose upload reaches S3 but whose answer never comes back
    proxy.hold_answers_after(8_000)  # past the HEAD, inside the PUT's body
    job_id, _ = send(caller)
    key = f"{PREFIX}/{job_id}.wav"
    until(lambda: key in objects(s3), 30, "the object on S3")
    # When the worker is SIGKILLed before it could record the result
    worker.kill()
    proxy.heal()
    svc = build(store_settings(redis_url, sb, moto_url, AUDIO_DIR=str(tmp_path / "a")))
    assert svc.jobs.get(job_id).state is JobState.DOWNLOADING
    before = objects(s3)[key]["LastModified"]
    # Then the step run again (as the redelivered message runs it) finds the same object,
    # does not upload it again, and ends the job succeeded
    assert steps.fetch(svc, job_id) is None
    job = svc.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED and job.location == f"s3://{BUCKET}/{key}"
    assert list(objects(s3)) == [key]
    assert objects(s3)[key]["LastModified"] == before
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_s3_down_for_30_seconds_loses_nothing(
    stack: tuple[CeleryWorker, Celery], s3: S3Client, proxy: FaultProxy, redis_url: str
) -> None:
    _, caller = stack
    # Given S3 unreachable (every connection refused) while four jobs finish at Akool
    proxy.cut_after(0)
    down_at = time.monotonic()
    sent = [send(caller) for _ in range(4)]
    svc_jobs = build(Settings.from_env({"REDIS_URL": redis_url, "AKOOL_API_KEY": "k"})).jobs
    until(
        lambda: all(storing(svc_jobs.find(j)) for j, _ in sent),
        30,
        "every job waiting for the store",
    )
    waiting = svc_jobs.get(sent[0][0])
    assert waiting.storage_error and "S3 endpoint" in waiting.storage_error
    # When S3 comes back after 30 s
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))  # ok-sleep: the outage itself
    proxy.heal()
    # Then every job succeeds, each object is whole, and no upload is left half done
    summaries = [result.get(timeout=60) for _, result in sent]
    assert [s["state"] for s in summaries] == ["succeeded"] * 4
    assert {f"{PREFIX}/{j}.wav" for j, _ in sent} == set(objects(s3))
    assert all(svc_jobs.get(j).storage_attempts >= 2 for j, _ in sent)
    assert s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    print(f"S3 down 30 s: 4/4 succeeded, {time.monotonic() - down_at:.1f} s after the cut")


def test_wrong_credentials_make_jobs_wait_then_succeed_once_fixed(
    stack: tuple[CeleryWorker, Celery], s3: S3Client, moto_url: str, redis_url: str
) -> None:
    _, caller = stack
    # Given a store that refuses our credentials (moto checks them against its IAM: none known)
    _enforce_auth(moto_url, True)
    job_id, result = send(caller)
    jobs = build(Settings.from_env({"REDIS_URL": redis_url, "AKOOL_API_KEY": "k"})).jobs
    until(lambda: attempts(jobs.find(job_id)) >= 2, 30, "two refused tries")
    job = jobs.get(job_id)
    assert job.state is JobState.STORING
    assert "access denied" in (job.storage_error or "")
    assert AWS["AWS_SECRET_ACCESS_KEY"] not in (job.storage_error or "")
    # When the credentials are fixed (here: the store stops checking them)
    _enforce_auth(moto_url, False)
    # Then the job succeeds on its next try
    assert result.get(timeout=60)["state"] == "succeeded"
    assert f"{PREFIX}/{job_id}.wav" in objects(s3)


CLOSED = "http://127.0.0.1:9"  # an S3 endpoint nobody answers on


def refused_result(svc: Services, tag: str) -> tuple[str, Later | None]:
    """A job run in-process up to its result, which the store then refuses: (id, the fetch's
    answer)."""
    job_id = f"{tag}-{uuid.uuid4().hex[:8]}"
    request = {"input_text": f"Result of {job_id}.", "voice_id": VOICE, "job_id": job_id}
    steps.accept(svc, "create", request, job_id)
    assert steps.submit(svc, job_id) is None
    assert steps.poll(svc, job_id) is None  # one poll: done
    return job_id, steps.fetch(svc, job_id)


def test_a_store_that_stays_down_past_the_window_fails_the_job(
    redis_url: str, sb: SandboxServer, tmp_path: Path, aws: None
) -> None:
    # In-process steps: the store's endpoint is a closed port; the window is 1 s.
    svc = build(store_settings(redis_url, sb, CLOSED, STORAGE_RETRY_WINDOW="1"))
    job_id, first = refused_result(svc, "window")
    assert first is not None and "waiting for the result store" in first.reason
    assert svc.jobs.get(job_id).state is JobState.STORING
    time.sleep(1.1)  # ok-sleep: past STORAGE_RETRY_WINDOW
    assert steps.fetch(svc, job_id) is None
    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED and job.error_code == ErrorCode.STORAGE_FAILED
    assert "STORAGE_RETRY_WINDOW=1" in (job.error_message or "")


def test_a_waiting_result_is_stored_from_its_staged_file_not_downloaded_again(
    redis_url: str, sb: SandboxServer, moto_url: str, s3: S3Client
) -> None:
    # Given a job whose result was fetched but refused by the store (its endpoint is closed)
    down = build(store_settings(redis_url, sb, CLOSED))
    job_id, later = refused_result(down, "staged")
    assert later is not None
    job = down.jobs.get(job_id)
    assert job.state is JobState.STORING and job.staged == f"{job_id}.wav"
    downloads = sb.stats()["requests"]["download"]
    # When the store is back (same host, same staging directory)
    up = build(store_settings(redis_url, sb, moto_url))
    assert up.store.staging_dir == down.store.staging_dir
    assert steps.fetch(up, job_id) is None
    # Then the staged file is stored as it is: no second download from Akool
    assert sb.stats()["requests"]["download"] == downloads
    done = up.jobs.get(job_id)
    assert done.state is JobState.SUCCEEDED and done.sha256 == job.sha256
    body = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/{job_id}.wav")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == job.sha256


def test_the_sweeper_never_fails_a_job_that_waits_for_the_store(
    redis_url: str, sb: SandboxServer, aws: None
) -> None:
    from worker.maintenance import sweeper

    svc = build(store_settings(redis_url, sb, CLOSED))
    job_id, later = refused_result(svc, "swept")
    assert later is not None  # storing
    # Even after many restarts and a long silence, a storing job is restarted, not failed
    svc.jobs.set_fields(job_id, sweeps=10)
    later = time.time() + 3600
    assert sweeper.decide(svc.jobs, job_id, later, 120, 420) is sweeper.Action.DOWNLOAD


def test_the_api_answers_a_result_on_s3_with_a_fresh_link(
    stack: tuple[CeleryWorker, Celery],
    s3: S3Client,
    sb: SandboxServer,
    redis_url: str,
    moto_url: str,
) -> None:
    # Given a job whose result is on S3
    _, caller = stack
    job_id, result = send(caller, "create")
    summary = result.get(timeout=60)
    assert summary["state"] == "succeeded", summary
    token = "s3-audio-token-0123456789"
    web = create_app(
        store_settings(redis_url, sb, moto_url, API_TOKENS=token, DOWNLOAD_URL_TTL="600")
    ).test_client()
    # When its audio is asked for through the API, with the token and without
    got = web.get(f"/v1/jobs/{job_id}/audio", headers={"Authorization": f"Bearer {token}"})
    refused = web.get(f"/v1/jobs/{job_id}/audio")
    # Then it is a 307 to a freshly signed link that serves the stored bytes
    assert got.status_code == 307 and got.headers["Cache-Control"] == "no-store"
    link = got.headers["Location"]
    assert "X-Amz-Signature=" in link and "X-Amz-Expires=600" in link
    body = requests.get(link, timeout=10).content
    assert hashlib.sha256(body).hexdigest() == summary["sha256"]
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "unauthorized"
