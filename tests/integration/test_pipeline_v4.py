"""VoiceLab (v4) jobs end to end beside v3 jobs: one real `celery worker`, real redis-server,
the sandbox over HTTP, and a caller app that imports none of our code."""

from __future__ import annotations

import hashlib
import io
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.result import AsyncResult

from sandbox import AKOOL_VOICES, VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer
from tests.support.stack import caller_app
from tests.support.wait import until

V3_VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
V4_VOICE = AKOOL_VOICES[0]["voice_id"]
TIMEOUT = 60


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def worker(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryWorker]:
    tmp = tmp_path_factory.mktemp("v4")
    env = worker_env(redis_server.url, sb.url, tmp / "audio")
    w = CeleryWorker(env, tmp / "worker.log", pool="threads", concurrency=8)
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
    kwargs.setdefault("input_text", f"Hello from a v4 test {uuid.uuid4().hex[:8]}.")
    if name == "audio.create":
        kwargs.setdefault("voice_id", V4_VOICE if kwargs.get("api") == "v4" else V3_VOICE)
    return caller.send_task(name, kwargs=kwargs, queue="audio")


def assert_file_matches_sandbox(summary: dict[str, Any], sb: SandboxServer) -> bytes:
    data = Path(summary["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == summary["sha256"]
    assert sb.job(summary["akool_id"])["sha256"] == summary["sha256"]
    return data


# -- step 3: v4 create beside v3 ------------------------------------------------------------------


def test_a_v3_and_a_v4_job_side_by_side_in_one_worker(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    text4 = "x" * 117  # 117 characters on the pro plan: 0.5148 credits
    v3, v4 = enqueue(caller), enqueue(caller, api="v4", input_text=text4)
    s3, s4 = v3.get(timeout=TIMEOUT), v4.get(timeout=TIMEOUT)
    assert (s3["state"], s4["state"]) == ("succeeded", "succeeded"), (s3, s4)
    assert (s3["api"], s3["credits"]) == ("v3", None)
    assert (s4["api"], s4["credits"]) == ("v4", 0.5148)
    assert sb.job(s3["akool_id"])["api"] == 3 and sb.job(s4["akool_id"])["api"] == 4
    for summary in (s3, s4):
        assert_file_matches_sandbox(summary, sb)
    assert s4["audio_url"] == f"{sb.url}/files/{s4['akool_id']}.wav"  # v4's preview
    requests = sb.stats()["requests"]
    assert (requests["create"], requests["detail"]) == (1, 2)
    assert (requests["v4_tts"], requests["v4_detail"]) == (1, 2)


def test_v4_options_reach_akool_and_wav_comes_back(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    model3 = next(v for v in AKOOL_VOICES if v["voice_model_name"].endswith("3"))
    summary = enqueue(
        caller,
        api="v4",
        voice_id=model3["voice_id"],
        voice_options={"speed": 1.1, "emotion": "happy"},
        language_code="yue",
        extra_options={"audio_setting": {"format": "wav", "sample_rate": 44100, "channel": 2}},
    ).get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded", summary
    view = sb.job(summary["akool_id"])
    assert view["voice_options"] == {"speed": 1.1, "emotion": "happy"}
    assert view["language_code"] == "yue"
    with wave.open(io.BytesIO(assert_file_matches_sandbox(summary, sb))) as w:
        assert (w.getframerate(), w.getnchannels()) == (44100, 2)


def test_status_4_fails_a_v4_job_and_keeps_its_credits(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    summary = enqueue(caller, api="v4", input_text="fails [[fail]]").get(timeout=TIMEOUT)
    assert summary["state"] == "failed" and summary["error"]["code"] == "akool_failed"
    assert summary["credits"] == round(len("fails [[fail]]") * 4.4 / 1000, 4)  # charged anyway
    assert sb.stats()["requests"]["v4_detail"] == 2


def test_v4_transient_faults_then_success(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    sb.configure(
        faults=[
            {"endpoint": "v4_tts", "kind": "code", "code": 1005, "times": 1},
            {"endpoint": "v4_detail", "kind": "http_500_html", "times": 1},
            {"endpoint": "v4_detail", "kind": "malformed_json", "times": 1},
            {"endpoint": "download", "kind": "drop", "times": 1},
        ]
    )
    summary = enqueue(caller, api="v4").get(timeout=TIMEOUT)
    assert summary["state"] == "succeeded", summary
    assert_file_matches_sandbox(summary, sb)
    stats = sb.stats()
    assert (stats["requests"]["v4_tts"], stats["submissions"]) == (2, 1)
    assert stats["requests"]["v4_detail"] == 4


def test_v4_permanent_errors_fail_at_once(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    unknown = enqueue(caller, api="v4", voice_id="NoSuchV4Voice0000000").get(timeout=TIMEOUT)
    assert unknown["state"] == "failed" and unknown["error"]["code"] == "1003"
    sb.configure(faults=[{"endpoint": "v4_tts", "kind": "code", "code": 1104, "times": 1}])
    broke = enqueue(caller, api="v4").get(timeout=TIMEOUT)
    assert broke["state"] == "failed" and broke["error"]["code"] == "1104"
    assert broke["credits"] is None  # nothing was charged
    assert sb.stats()["requests"]["v4_tts"] == 2


def test_a_bad_v4_request_fails_the_task_and_sends_nothing(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    for kwargs in (
        {"api": "v4", "rate": "90%"},
        {"api": "v4", "voice_options": {"speed": 2.0}},
        {"voice_options": {"speed": 1.0}},  # a v4 option on a v3 job
    ):
        with pytest.raises(Exception, match="voice_options"):
            enqueue(caller, **kwargs).get(timeout=TIMEOUT)
    assert sum(sb.stats()["requests"].values()) == 0


def test_credits_are_counted_in_the_fleet_metrics(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer, redis_server: RedisServer
) -> None:
    r = redis_server.client()
    before = float(r.hget("akool-audio:metrics:total", "credits") or 0)
    summary = enqueue(caller, api="v4", input_text="y" * 1000).get(timeout=TIMEOUT)
    assert summary["credits"] == 4.4
    until(
        lambda: float(r.hget("akool-audio:metrics:total", "credits") or 0) >= before + 4.4 - 1e-6,
        15.0,
        "the credits counter flushed",
    )


# -- step 4: clone, then speak, as one job ---------------------------------------------------------


def test_clone_then_speak_in_one_job_and_the_voice_is_reused(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    sample = f"{sb.url}/previews/{V3_VOICE}.wav?take=1"
    results = [
        enqueue(
            caller,
            "audio.clone",
            api="v4",
            input_text=f"My own voice, line {n}.",
            source_voice_file=sample,
            voice_model_name="Akool Multilingual 1",
        )
        for n in range(3)
    ]
    summaries = [r.get(timeout=TIMEOUT) for r in results]
    assert [s["state"] for s in summaries] == ["succeeded"] * 3, summaries
    assert sb.stats()["clones"] == 1 and sb.stats()["submissions"] == 3
    (clone,) = sb.clones()
    for summary in summaries:
        assert summary["api"] == "v4" and summary["credits"] > 0
        assert sb.job(summary["akool_id"])["voice_id"] == clone["new_voice_id"]
        assert_file_matches_sandbox(summary, sb)


def test_a_failed_clone_fails_the_job_and_is_not_remembered(
    worker: CeleryWorker, caller: Celery, sb: SandboxServer
) -> None:
    sample = f"{sb.url}/previews/{V3_VOICE}.wav?take=2"
    sb.configure(faults=[{"endpoint": "v4_voice_detail", "kind": "status_4", "times": 1}])
    failed = enqueue(
        caller, "audio.clone", api="v4", input_text="No voice.", source_voice_file=sample
    ).get(timeout=TIMEOUT)
    assert failed["state"] == "failed" and failed["error"]["code"] == "akool_failed"
    assert "voice" in failed["error"]["message"] and failed["akool_id"] is None
    assert failed["credits"] is None  # the speech was never sent
    ok = enqueue(
        caller, "audio.clone", api="v4", input_text="Voice now.", source_voice_file=sample
    ).get(timeout=TIMEOUT)
    assert ok["state"] == "succeeded", ok
    assert sb.stats()["clones"] == 2  # cloned again after the failure
