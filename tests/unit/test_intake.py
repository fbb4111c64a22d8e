from __future__ import annotations

from typing import Any

import pytest

from config.settings import Settings
from worker.jobs.request import InvalidRequest, parse_job_id, parse_request

S = Settings.from_env({"ALLOW_PRIVATE_HOSTS": "127.0.0.1"})
OK: dict[str, Any] = {"input_text": "Hello there.", "voice_id": "piTKgcLEGmPE4e6mEKli"}


def test_a_good_create_request_parses_with_defaults() -> None:
    req = parse_request("create", OK, S)
    assert (req.rate, req.voice_url, req.notify_queue) == ("100%", None, "celery")


def test_clone_accepts_voice_url_or_voice_id() -> None:
    assert (
        parse_request(
            "clone", {"input_text": "Hi", "voice_url": "https://x.test/a.mp3"}, S
        ).voice_url
        == "https://x.test/a.mp3"
    )
    assert parse_request("clone", {"input_text": "Hi", "voice_id": "abc"}, S).voice_id == "abc"


@pytest.mark.parametrize(
    ("kind", "kwargs", "field"),
    [
        ("create", {"voice_id": "v"}, "input_text"),
        ("create", {**OK, "input_text": "   "}, "input_text"),
        ("create", {**OK, "input_text": "a\x00b"}, "input_text"),
        ("create", {**OK, "input_text": "w " * 5001}, "input_text"),
        ("create", {**OK, "input_text": 42}, "input_text"),
        ("create", {"input_text": "Hi"}, "voice_id"),
        ("create", {**OK, "voice_id": ""}, "voice_id"),
        ("create", {**OK, "voice_id": "../../etc"}, "voice_id"),
        ("create", {**OK, "voice_id": ["a"]}, "voice_id"),
        ("create", {**OK, "rate": "0%"}, "rate"),
        ("create", {**OK, "rate": "150%"}, "rate"),
        ("create", {**OK, "rate": "abc"}, "rate"),
        ("create", {**OK, "rate": ""}, "rate"),
        ("create", {**OK, "rate": 100}, "rate"),
        ("create", {**OK, "voiceId": "x"}, "voiceId"),
        ("create", {**OK, "voice_url": "https://x.test/a.mp3"}, "voice_url"),
        ("clone", {"input_text": "Hi"}, "voice_url"),
        ("clone", {"input_text": "Hi", "voice_url": "file:///etc/passwd"}, "voice_url"),
        ("clone", {"input_text": "Hi", "voice_url": "javascript:alert(1)"}, "voice_url"),
        ("clone", {"input_text": "Hi", "voice_url": "http://169.254.169.254/x"}, "voice_url"),
        (
            "clone",
            {"input_text": "Hi", "voice_url": "https://a.test/x", "voice_id": "v"},
            "voice_url",
        ),
        ("create", {**OK, "notify_url": "http://10.1.2.3/hook"}, "notify_url"),
        ("create", {**OK, "notify_url": "http://localhost/hook"}, "notify_url"),
        ("create", {**OK, "notify_url": "ftp://a.test/hook"}, "notify_url"),
        ("create", {**OK, "notify_task": "not a task"}, "notify_task"),
        ("create", {**OK, "notify_queue": "bad queue"}, "notify_queue"),
    ],
)
def test_bad_requests_name_the_field(kind: str, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(kind, kwargs, S)
    assert info.value.field == field
    assert field in str(info.value)


@pytest.mark.parametrize("job_id", ["", "../x", "a/b", "a" * 129, ".hidden", "x..y", 7])
def test_job_ids_that_could_escape_a_directory_are_refused(job_id: Any) -> None:
    with pytest.raises(InvalidRequest, match="job_id"):
        parse_job_id(job_id)


def test_loopback_is_allowed_when_listed() -> None:
    req = parse_request("create", {**OK, "notify_url": "http://127.0.0.1:9/h"}, S)
    assert req.notify_url == "http://127.0.0.1:9/h"
