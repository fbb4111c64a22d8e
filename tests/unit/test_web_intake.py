"""``POST /v1/jobs`` as a plain function against a real Redis: a bad body records and sends
nothing; a good one is recorded with the task id it is then sent under; the same request again
sends nothing; another request under the same job id is a conflict."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from config.settings import Settings
from worker.jobs import JobConflict, JobState
from worker.jobs.request import InvalidRequest
from worker.web import deps, intake

VOICE = "piTKgcLEGmPE4e6mEKli"
OK: dict[str, Any] = {"kind": "create", "input_text": "Hello there.", "voice_id": VOICE}
Sent = list[tuple[str, dict[str, Any], str]]


@pytest.fixture()
def sent() -> Sent:
    return []


@pytest.fixture()
def d(redis_url: str, sent: Sent) -> deps.Deps:
    s = Settings(redis_url=redis_url, api_tokens=("a-test-token-0123456789",))
    return deps.build(s, send=lambda name, kw, task_id: sent.append((name, kw, task_id)))


def job_keys(d: deps.Deps) -> list[str]:
    r = redis.Redis.from_url(d.settings.redis_url, decode_responses=True)
    return sorted(str(k) for k in r.scan_iter(match=d.settings.key("job", "*")))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ("text", "body"),
        (None, "body"),
        ({"input_text": "Hi", "voice_id": VOICE}, "kind"),
        ({**OK, "kind": "delete"}, "kind"),
        ({**OK, "kind": 1}, "kind"),
        ({**OK, "kind": None}, "kind"),
        ({**OK, "voiceId": VOICE}, "voiceId"),
        ({**OK, "voice_url": "https://x.test/a.mp3"}, "voice_url"),
        ({**OK, "z" * 500: 1}, "z" * 60),
        ({**OK, "notify_task": "my.task"}, "notify_task"),
        ({**OK, "notify_queue": "celery"}, "notify_queue"),
        ({**OK, "input_text": 5}, "input_text"),
        ({**OK, "rate": "101%"}, "rate"),
        ({**OK, "job_id": "a b"}, "job_id"),
        ({**OK, "job_id": "a\r\nSet-Cookie: x=1"}, "job_id"),
        ({**OK, "job_id": "a\n"}, "job_id"),
        ({**OK, "job_id": "../etc"}, "job_id"),
        ({**OK, "job_id": 7}, "job_id"),
        ({**OK, "notify_url": "http://10.1.2.3/h"}, "notify_url"),
        ({**OK, "notify_url": "https://x.test/a\r\nX-Injected: 1"}, "notify_url"),
        ({"kind": "clone", "input_text": "Hi"}, "voice_url"),
    ],
)
def test_a_bad_body_names_its_field_and_records_and_sends_nothing(
    d: deps.Deps, sent: Sent, body: Any, field: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        intake.submit(d, body)
    assert caught.value.field == field
    assert str(caught.value)
    assert sent == [] and job_keys(d) == []


def test_a_good_body_is_recorded_then_sent_under_the_owners_task_id(
    d: deps.Deps, sent: Sent
) -> None:
    got = intake.submit(d, {**OK, "job_id": "web-1", "rate": None})
    assert (got.job_id, got.state, got.created) == ("web-1", JobState.ACCEPTED, True)
    [(name, kwargs, task_id)] = sent
    assert name == "audio.create" and kwargs == {
        "input_text": "Hello there.",
        "voice_id": VOICE,
        "job_id": "web-1",
    }
    job = d.jobs.get("web-1")
    assert job.owner_task_id == task_id and job.state is JobState.ACCEPTED
    assert job.request["rate"] == "100%"  # null is the same as absent


def test_the_same_request_again_sends_nothing_and_another_one_conflicts(
    d: deps.Deps, sent: Sent
) -> None:
    first = intake.submit(d, {**OK, "job_id": "web-2"})
    again = intake.submit(d, {**OK, "job_id": "web-2"})
    assert first.created and not again.created and again.job is not None
    assert again.job.job_id == "web-2" and len(sent) == 1
    with pytest.raises(JobConflict):
        intake.submit(d, {**OK, "job_id": "web-2", "input_text": "Something else."})
    assert len(sent) == 1


def test_without_a_job_id_one_is_made(d: deps.Deps, sent: Sent) -> None:
    got = intake.submit(d, {"kind": "clone", "input_text": "Hi", "voice_url": "https://x.test/v"})
    assert len(got.job_id) == 32 and int(got.job_id, 16) >= 0
    assert sent[0][0] == "audio.clone" and sent[0][1]["job_id"] == got.job_id


def test_a_voice_the_fresh_cache_does_not_know_is_refused(d: deps.Deps, sent: Sent) -> None:
    def unknown(request: Any) -> tuple[str, str]:
        return "voice_id", f"unknown voice_id {request.voice_id!r}"

    refusing = deps.Deps(**{**d.__dict__, "request_problem": unknown})
    with pytest.raises(InvalidRequest) as caught:
        intake.submit(refusing, {**OK, "job_id": "web-3"})
    assert caught.value.field == "voice_id" and sent == [] and job_keys(d) == []
