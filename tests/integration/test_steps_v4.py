"""VoiceLab (v4) in the pipeline's steps, called in-process (real Redis, the sandbox over HTTP,
no Celery worker): the voice cache per API with each voice's model, the refusals it allows,
the webhook receiver's ``preview``, and ``akool-audio voices --api v4``."""

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

from config.settings import Settings
from sandbox import (
    AKOOL_VOICES,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    OWN_VOICES,
    VOICES,
    SandboxServer,
)
from tests.support.procs import ROOT, loopback_allow, worker_env
from tests.support.wait import until
from worker import pipeline as steps
from worker.akool import AudioStatus
from worker.akool.crypto import seal
from worker.fleet import voicecache
from worker.fleet.clonecache import sample_key
from worker.jobs import JobState
from worker.jobs.request import InvalidRequest
from worker.pipeline.schedule import Later
from worker.services import Services, build
from worker.web.webhook import Receiver

V3_VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
MODEL = {
    n: next(v for v in AKOOL_VOICES if v["voice_model_name"].endswith(str(n))) for n in range(1, 5)
}
CLI = str(Path(sys.executable).with_name("akool-audio"))
Make = Callable[..., Services]


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 2})


@pytest.fixture()
def make(redis_url: str, sb: SandboxServer, tmp_path: Path) -> Iterator[Make]:
    built: list[Services] = []

    def _make(**env: str) -> Services:
        base = {
            "REDIS_URL": redis_url,
            "AKOOL_BASE_URL": sb.url,
            "AKOOL_API_KEY": DEFAULT_API_KEY,
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "AUDIO_DIR": str(tmp_path),
            "ALLOW_PRIVATE_HOSTS": loopback_allow(sb.url),
            "AKOOL_RATE_LIMIT": "1000",
            "AKOOL_RATE_BURST": "1000",
        }
        svc = build(Settings.from_env({**base, **env}))
        built.append(svc)
        return svc

    yield _make
    for svc in built:
        svc.akool.close()
        svc.http.close()


@pytest.fixture()
def svc(make: Make) -> Services:
    return make()


def accept(svc: Services, kind: str = "create", **kwargs: Any) -> str:
    job_id = f"v4-{uuid.uuid4().hex[:12]}"
    got, owner = steps.accept(svc, kind, {"job_id": job_id, **kwargs}, f"task-{job_id}")
    assert (got, owner) == (job_id, True)
    return job_id


# -- the voice cache ------------------------------------------------------------------------------


def test_refresh_keeps_each_apis_voices_and_each_v4_voices_model(
    svc: Services, sb: SandboxServer
) -> None:
    counts, wait = voicecache.refresh(svc.voices, svc.akool, svc.limiter)
    assert wait == 0 and counts == {"v3": len(VOICES), "v4": len(AKOOL_VOICES) + len(OWN_VOICES)}
    v3, v4 = svc.voices.load("v3"), svc.voices.load("v4")
    assert v3 is not None and v4 is not None
    assert {v["voice_id"] for v in v3.voices} == {v["voice_id"] for v in VOICES}
    assert {v["type"] for v in v4.voices} == {1, 2}
    assert svc.voices.knows(V3_VOICE, "v3") and not svc.voices.knows(V3_VOICE, "v4")
    assert svc.voices.knows(MODEL[2]["voice_id"], "v4")
    assert svc.voices.model_of(MODEL[4]["voice_id"]) == "Akool Multilingual 4"
    assert svc.voices.model_of(V3_VOICE) is None
    assert sb.stats()["requests"]["voices"] == 1 and sb.stats()["requests"]["v4_voices"] == 2


def test_a_v4_list_that_fails_leaves_v3_refreshed(svc: Services, sb: SandboxServer) -> None:
    sb.configure(faults=[{"endpoint": "v4_voices", "kind": "code", "code": 1213, "times": 1}])
    with pytest.raises(Exception, match="subscription"):
        voicecache.refresh(svc.voices, svc.akool, svc.limiter)
    assert svc.voices.load("v3") is not None and svc.voices.load("v4") is None
    assert svc.voices.knows(MODEL[1]["voice_id"], "v4") is None  # no cache: Akool judges


@pytest.mark.parametrize(
    ("model", "kwargs", "field", "fine"),
    [
        (4, {"voice_options": {"speed": 1.0}}, "voice_options.speed", 3),
        (3, {"voice_options": {"stability": 0.5}}, "voice_options.stability", 1),
        (1, {"voice_options": {"emotion": "sad"}}, "voice_options.emotion", 2),
        (2, {"language_code": "zh"}, "language_code", 1),
        (1, {"extra_options": {"audio_setting": {"format": "wav"}}}, "audio_setting.format", 3),
    ],
)
def test_an_option_the_voices_model_lacks_is_refused_before_anything_is_sent(
    svc: Services, sb: SandboxServer, model: int, kwargs: dict[str, Any], field: str, fine: int
) -> None:
    voicecache.refresh(svc.voices, svc.akool, svc.limiter)
    before = sum(sb.stats()["requests"].values())
    with pytest.raises(InvalidRequest) as caught:
        accept(svc, api="v4", input_text="Hi", voice_id=MODEL[model]["voice_id"], **kwargs)
    assert field in caught.value.field and f"Multilingual {model}" in str(caught.value)
    assert sum(sb.stats()["requests"].values()) == before
    # the same options on a voice whose model has them are accepted
    accept(svc, api="v4", input_text="Hi", voice_id=MODEL[fine]["voice_id"], **kwargs)


def test_without_a_fresh_cache_akool_judges_the_options(svc: Services) -> None:
    job_id = accept(
        svc, api="v4", input_text="Hi", voice_id=MODEL[4]["voice_id"], voice_options={"speed": 1}
    )
    assert svc.jobs.get(job_id).api == "v4"


def test_an_unknown_v4_voice_is_refused_after_one_refresh(svc: Services, sb: SandboxServer) -> None:
    voicecache.refresh(svc.voices, svc.akool, svc.limiter)
    with pytest.raises(InvalidRequest, match="not in Akool's v4 voice list") as caught:
        accept(svc, api="v4", input_text="Hi", voice_id=V3_VOICE)  # a v3 voice
    assert caught.value.field == "voice_id" and "--api v4" in str(caught.value)
    assert sb.stats()["requests"]["v4_voices"] == 2 + 2  # the refresh on the miss
    accept(svc, input_text="Hi", voice_id=V3_VOICE)  # as a v3 job it is fine


# -- submit, poll and the webhook ------------------------------------------------------------------


def test_submit_records_the_credits_and_poll_reads_the_resource(
    svc: Services, sb: SandboxServer
) -> None:
    job_id = accept(svc, api="v4", input_text="z" * 500, voice_id=MODEL[1]["voice_id"])
    assert steps.submit(svc, job_id) is None
    job = svc.jobs.get(job_id)
    assert job.state is JobState.SUBMITTED and job.credits == 2.2
    assert job.summary()["credits"] == 2.2 and job.summary()["api"] == "v4"
    assert steps.poll(svc, job_id) is not None  # status 1: later
    assert steps.poll(svc, job_id) is None
    done = svc.jobs.get(job_id)
    assert done.state is JobState.DOWNLOADING and done.audio_url == sb.job(job.akool_id)["url"]


@pytest.mark.parametrize("field", ["preview", "url", "both"])
def test_the_webhook_takes_the_audio_from_preview_or_url(
    svc: Services, sb: SandboxServer, field: str
) -> None:
    job_id = accept(svc, api="v4", input_text="Hi", voice_id=MODEL[1]["voice_id"])
    assert steps.submit(svc, job_id) is None
    akool_id = svc.jobs.get(job_id).akool_id
    assert akool_id is not None
    enqueued: list[str] = []
    settings = Settings(
        redis_url=svc.settings.redis_url,
        akool_client_id=DEFAULT_CLIENT_ID,
        akool_client_secret=DEFAULT_CLIENT_SECRET,
    )
    receiver = Receiver(svc.jobs, settings, enqueued.append)
    audio = f"{sb.url}/files/{akool_id}.wav"
    payload: dict[str, Any] = {"_id": akool_id, "status": 3, "type": "audio"}
    if field in ("preview", "both"):
        payload["preview"] = audio
    if field in ("url", "both"):
        payload["url"] = audio
    body = seal(payload, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, int(time.time() * 1000))
    answer = receiver.handle(json.dumps(body.to_json()).encode())
    assert (answer.status, answer.message) == (200, "ok")
    job = svc.jobs.get(job_id)
    assert job.state is JobState.DOWNLOADING and job.audio_url == audio
    assert job.akool_status is AudioStatus.COMPLETED and enqueued == [job_id]


# -- the command line ----------------------------------------------------------------------------


def test_voices_api_v4_reads_every_page(redis_url: str, sb: SandboxServer, tmp_path: Path) -> None:
    env = worker_env(redis_url, sb.url, tmp_path)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )

    out = run("voices", "--api", "v4", "--json", "--refresh")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert [v["voice_id"] for v in listed] == [v["voice_id"] for v in (*AKOOL_VOICES, *OWN_VOICES)]
    mine = run("voices", "--api", "v4", "--from", "4", "--refresh")
    assert mine.returncode == 0, mine.stderr
    assert [line.split()[0] for line in mine.stdout.splitlines()] == [
        v["voice_id"] for v in OWN_VOICES
    ]
    assert "Akool Multilingual" in mine.stdout


# -- step 4: clone, then speak, as one job ---------------------------------------------------------


def sample(sb: SandboxServer, name: str = "me") -> str:
    return f"{sb.url}/previews/{VOICES[0]['voice_id']}.wav?sample={name}"


def run_submit(svc: Services, job_id: str, limit: int = 10) -> list[Later]:
    """Call submit until it is done (None), returning the Laters it gave on the way."""
    laters: list[Later] = []
    for _ in range(limit):
        got = steps.submit(svc, job_id)
        if got is None:
            return laters
        laters.append(got)
    raise AssertionError(f"submit still waits after {limit} calls: {laters}")


def test_clone_polls_the_voice_then_speaks_with_it(svc: Services, sb: SandboxServer) -> None:
    job_id = accept(
        svc,
        "clone",
        api="v4",
        input_text="Spoken in my own voice.",
        source_voice_file=sample(sb),
        voice_model_name="Akool Multilingual 3",
        clone_options={"gender": ["Female"]},
        voice_options={"speed": 1.1},
    )
    laters = run_submit(svc, job_id)
    assert [later.reason for later in laters] == [
        "the voice is being cloned",
        "cloned voice status 2",
    ]
    job = svc.jobs.get(job_id)
    (clone,) = sb.clones()
    assert job.state is JobState.SUBMITTED and job.stage == "speaking"
    assert job.voice_doc_id == clone["_id"] and job.cloned_voice_id == clone["new_voice_id"]
    assert job.voice_polls == 2 and job.credits is not None
    tts = sb.job(job.akool_id or "")
    assert tts["voice_id"] == clone["new_voice_id"] and tts["voice_options"] == {"speed": 1.1}
    assert clone["voice_model_name"] == "Akool Multilingual 3"
    kinds = [e["type"] for e in svc.jobs.timeline.events(job_id)]
    assert kinds.index("clone_started") < kinds.index("voice_ready") < kinds.index("submitted")


def test_the_same_sample_is_never_cloned_twice(svc: Services, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    jobs = [
        accept(svc, "clone", api="v4", input_text=f"Line {n}.", source_voice_file=sample(sb))
        for n in range(3)
    ]
    for job_id in jobs:
        assert run_submit(svc, job_id) == []
    assert sb.stats()["clones"] == 1 and sb.stats()["submissions"] == 3
    voices = {svc.jobs.get(j).cloned_voice_id for j in jobs}
    assert len(voices) == 1
    reused = [e for e in svc.jobs.timeline.events(jobs[2]) if e["type"] == "voice_ready"]
    assert reused[0]["how"] == "reused"
    # Other clone options are another sample: cloned once more.
    other = accept(
        svc,
        "clone",
        api="v4",
        input_text="Other options.",
        source_voice_file=sample(sb),
        clone_options={"remove_background_noise": True},
    )
    assert run_submit(svc, other) == []
    assert sb.stats()["clones"] == 2


def test_a_second_job_waits_while_the_sample_is_being_cloned(
    svc: Services, sb: SandboxServer
) -> None:
    first = accept(svc, "clone", api="v4", input_text="First.", source_voice_file=sample(sb))
    second = accept(svc, "clone", api="v4", input_text="Second.", source_voice_file=sample(sb))
    assert steps.submit(svc, first) is not None  # cloned, pending
    later = steps.submit(svc, second)  # finds the pending voice: polls it, does not clone
    assert later is not None and later.reason.startswith("cloned voice status")
    run_submit(svc, first)
    run_submit(svc, second)
    assert sb.stats()["clones"] == 1
    assert svc.jobs.get(first).cloned_voice_id == svc.jobs.get(second).cloned_voice_id
    # while a lease is held, nobody else POSTs a clone
    key_job = accept(svc, "clone", api="v4", input_text="Third.", source_voice_file=sample(sb, "x"))
    token = svc.clones.lease(sample_key(sample(sb, "x"), None, None), 30)
    assert token is not None
    later = steps.submit(svc, key_job)
    assert later is not None and "another worker is cloning" in later.reason
    assert sb.stats()["clones"] == 1


@pytest.mark.parametrize(
    ("fault_endpoint", "text", "stage"),
    [
        ("v4_clone", "Hello.", "cloning"),  # the clone's answer says the voice will fail
        ("v4_voice_detail", "Hello.", "cloning"),  # a poll of the voice says 4
        (None, "Hello [[fail]].", "speaking"),  # the speech fails
    ],
)
def test_status_4_at_each_stage_fails_the_job(
    svc: Services, sb: SandboxServer, fault_endpoint: str | None, text: str, stage: str
) -> None:
    if fault_endpoint:
        sb.configure(faults=[{"endpoint": fault_endpoint, "kind": "status_4", "times": 1}])
    job_id = accept(svc, "clone", api="v4", input_text=text, source_voice_file=sample(sb))
    run_submit(svc, job_id)
    while svc.jobs.get(job_id).state is JobState.SUBMITTED:
        steps.poll(svc, job_id)
    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED and job.error_code == "akool_failed"
    assert job.stage == stage
    again = accept(svc, "clone", api="v4", input_text="Again.", source_voice_file=sample(sb))
    run_submit(svc, again)
    # A failed voice is forgotten (cloned again); a good one is reused.
    assert sb.stats()["clones"] == (2 if stage == "cloning" else 1)
    assert svc.jobs.get(again).state is JobState.SUBMITTED


def test_an_ambiguous_clone_is_found_again_not_cloned_twice(make: Make, sb: SandboxServer) -> None:
    svc = make(AKOOL_READ_TIMEOUT="0.3")
    sb.configure(faults=[{"endpoint": "v4_clone", "kind": "slow", "delay": 0.6, "times": 1}])
    job_id = accept(svc, "clone", api="v4", input_text="Lost.", source_voice_file=sample(sb))
    later = steps.submit(svc, job_id)
    assert later is not None and "cloning the voice failed" in later.reason
    until(lambda: sb.stats()["clones"] == 1, 5.0, "the slow clone made at the sandbox")
    run_submit(svc, job_id)
    assert sb.stats()["clones"] == 1
    job = svc.jobs.get(job_id)
    assert job.state is JobState.SUBMITTED
    assert job.cloned_voice_id == sb.clones()[0]["new_voice_id"]
    kinds = [e["type"] for e in svc.jobs.timeline.events(job_id)]
    assert "clone_ambiguous" in kinds


def test_clone_errors_retry_or_fail_with_akools_code(svc: Services, sb: SandboxServer) -> None:
    sb.configure(faults=[{"endpoint": "v4_clone", "kind": "code", "code": 1005, "times": 1}])
    job_id = accept(svc, "clone", api="v4", input_text="Busy.", source_voice_file=sample(sb))
    later = steps.submit(svc, job_id)
    assert later is not None and "failed, retrying" in later.reason
    run_submit(svc, job_id)
    assert svc.jobs.get(job_id).state is JobState.SUBMITTED
    sb.configure(faults=[{"endpoint": "v4_clone", "kind": "code", "code": 1006, "times": 1}])
    full = accept(svc, "clone", api="v4", input_text="Full.", source_voice_file=sample(sb, "q"))
    assert steps.submit(svc, full) is None
    job = svc.jobs.get(full)
    assert job.state is JobState.FAILED and job.error_code == "1006"
    assert "cloning the voice" in (job.error_message or "")


def test_a_retried_clone_job_reuses_its_voice(svc: Services, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    job_id = accept(
        svc, "clone", api="v4", input_text="Fail [[fail]].", source_voice_file=sample(sb)
    )
    run_submit(svc, job_id)
    assert svc.jobs.get(job_id).state is JobState.FAILED
    again = svc.jobs.retry(job_id)
    assert again.stage is None and again.cloned_voice_id is None and again.credits is None
    run_submit(svc, job_id)
    assert svc.jobs.get(job_id).cloned_voice_id is not None
    assert sb.stats()["clones"] == 1 and sb.stats()["submissions"] == 2
