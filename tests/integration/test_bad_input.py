"""Bad input through a real worker: every case is sent with ``send_task`` as another backend
would, fails the task with an error that names the field, writes no job record and sends
nothing to Akool (the sandbox's stats), while good jobs sent in between are unaffected.
(tests/unit/test_intake.py has the pure table; this is the same contract end to end.)"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from tests.support.harness import VOICE, Stack

OK: dict[str, Any] = {"input_text": "A perfectly fine sentence.", "voice_id": VOICE}
CLONE: dict[str, Any] = {"input_text": "Clone me."}

# (name, task, kwargs, the field the error must name)
CASES: list[tuple[str, str, dict[str, Any], str]] = [
    ("empty text", "audio.create", {**OK, "input_text": ""}, "input_text"),
    ("blank text", "audio.create", {**OK, "input_text": " \n\t "}, "input_text"),
    ("missing text", "audio.create", {"voice_id": VOICE}, "input_text"),
    ("5001 words", "audio.create", {**OK, "input_text": "word " * 5001}, "input_text"),
    ("NUL byte", "audio.create", {**OK, "input_text": "a\x00b"}, "input_text"),
    ("bell control char", "audio.create", {**OK, "input_text": "ding\x07"}, "input_text"),
    ("lone surrogate", "audio.create", {**OK, "input_text": "bad \ud800 text"}, "input_text"),
    ("huge unicode", "audio.create", {**OK, "input_text": "\U0001f600" * 60_000}, "input_text"),
    ("text is a number", "audio.create", {**OK, "input_text": 42}, "input_text"),
    ("text is a list", "audio.create", {**OK, "input_text": ["a", "b"]}, "input_text"),
    ("rate 0%", "audio.create", {**OK, "rate": "0%"}, "rate"),
    ("rate 150%", "audio.create", {**OK, "rate": "150%"}, "rate"),
    ("rate abc", "audio.create", {**OK, "rate": "abc"}, "rate"),
    ("rate empty", "audio.create", {**OK, "rate": ""}, "rate"),
    ("rate number", "audio.create", {**OK, "rate": 100}, "rate"),
    ("rate negative", "audio.create", {**OK, "rate": "-5%"}, "rate"),
    ("rate decimal", "audio.create", {**OK, "rate": "99.5%"}, "rate"),
    ("rate no percent", "audio.create", {**OK, "rate": "50"}, "rate"),
    ("missing voice", "audio.create", {"input_text": "Hi"}, "voice_id"),
    ("empty voice", "audio.create", {**OK, "voice_id": ""}, "voice_id"),
    ("voice traversal", "audio.create", {**OK, "voice_id": "../../etc/passwd"}, "voice_id"),
    ("voice number", "audio.create", {**OK, "voice_id": 7}, "voice_id"),
    ("voice 200 chars", "audio.create", {**OK, "voice_id": "v" * 200}, "voice_id"),
    ("clone no voice", "audio.clone", CLONE, "voice_url"),
    ("clone file://", "audio.clone", {**CLONE, "voice_url": "file:///etc/passwd"}, "voice_url"),
    (
        "clone javascript:",
        "audio.clone",
        {**CLONE, "voice_url": "javascript:alert(1)"},
        "voice_url",
    ),
    (
        "clone metadata ip",
        "audio.clone",
        {**CLONE, "voice_url": "http://169.254.169.254/a"},
        "voice_url",
    ),
    (
        "clone userinfo",
        "audio.clone",
        {**CLONE, "voice_url": "https://u:p@x.test/a.mp3"},
        "voice_url",
    ),
    (
        "clone both",
        "audio.clone",
        {**CLONE, "voice_url": "https://x.test/a", "voice_id": VOICE},
        "voice_url",
    ),
    ("notify 10/8", "audio.create", {**OK, "notify_url": "http://10.0.0.5/hook"}, "notify_url"),
    ("notify 192.168", "audio.create", {**OK, "notify_url": "http://192.168.1.1/h"}, "notify_url"),
    (
        "notify link-local",
        "audio.create",
        {**OK, "notify_url": "http://169.254.1.1/h"},
        "notify_url",
    ),
    ("notify 127.1", "audio.create", {**OK, "notify_url": "http://127.1/h"}, "notify_url"),
    (
        "notify 0x7f000001",
        "audio.create",
        {**OK, "notify_url": "http://0x7f000001/h"},
        "notify_url",
    ),
    (
        "notify 2130706433",
        "audio.create",
        {**OK, "notify_url": "http://2130706433/h"},
        "notify_url",
    ),
    ("notify ::1", "audio.create", {**OK, "notify_url": "http://[::1]:8080/h"}, "notify_url"),
    (
        "notify mapped v6",
        "audio.create",
        {**OK, "notify_url": "http://[::ffff:127.0.0.2]/h"},
        "notify_url",
    ),
    (
        "notify x.localhost",
        "audio.create",
        {**OK, "notify_url": "http://x.localhost/h"},
        "notify_url",
    ),
    ("notify 127.0.0.2", "audio.create", {**OK, "notify_url": "http://127.0.0.2/h"}, "notify_url"),
    ("notify ftp", "audio.create", {**OK, "notify_url": "ftp://example.com/h"}, "notify_url"),
    (
        "notify huge",
        "audio.create",
        {**OK, "notify_url": "https://a.test/" + "x" * 5000},
        "notify_url",
    ),
    ("notify number", "audio.create", {**OK, "notify_url": 5}, "notify_url"),
    ("unknown kwarg", "audio.create", {**OK, "voiceId": VOICE}, "voiceId"),
    ("oversized kwarg", "audio.create", {**OK, "x" * 300: "y" * 1_000_000}, "x" * 20),
    ("notify_task junk", "audio.create", {**OK, "notify_task": "a; rm -rf /"}, "notify_task"),
    ("notify_queue junk", "audio.create", {**OK, "notify_queue": "bad queue!"}, "notify_queue"),
    ("job_id traversal", "audio.create", {**OK, "job_id": "../../etc/passwd"}, "job_id"),
    ("job_id slash", "audio.create", {**OK, "job_id": "a/b"}, "job_id"),
    ("job_id dotdot", "audio.create", {**OK, "job_id": "a..b"}, "job_id"),
    ("job_id empty", "audio.create", {**OK, "job_id": ""}, "job_id"),
    ("job_id 129 chars", "audio.create", {**OK, "job_id": "j" * 129}, "job_id"),
    ("job_id number", "audio.create", {**OK, "job_id": 12345}, "job_id"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("bad-input"))
    s.sandbox.configure(lifecycle={"mode": "polls", "polls": 1})
    s.worker("w1")
    yield s
    s.stop()


def failure(res: AsyncResult, timeout: float = 60) -> str:
    res.get(timeout=timeout, propagate=False)
    assert res.state == "FAILURE", (res.state, res.result)
    return str(res.result)


def test_every_bad_request_is_refused_naming_the_field(stack: Stack) -> None:
    # Given good jobs sent before, between and after the bad ones
    good = stack.enqueue(2, "good-before")
    sent = []
    for name, task, kwargs, field in CASES:
        task_id = f"bad-{uuid.uuid4().hex[:10]}"
        sent.append(
            (
                name,
                field,
                kwargs,
                stack.caller.send_task(task, kwargs=kwargs, task_id=task_id, queue="audio"),
            )
        )
    good += stack.enqueue(2, "good-after")
    # Then each bad one failed, naming its field
    problems = []
    for name, field, _, res in sent:
        message = failure(res)
        if field not in message:
            problems.append(f"{name}: {message[:200]}")
    assert not problems, problems
    assert len(CASES) >= 30
    # and nothing reached Akool, no record was written for them, the good jobs all succeeded
    assert stack.wait_final(good, 60) < 60
    states = stack.states(good)
    assert set(states.values()) == {"succeeded"}, states
    stats = stack.sandbox.stats()
    assert stats["submissions"] == len(good)
    assert stats["requests"]["create"] == len(good)
    assert stats["requests"]["clone"] == 0
    r = stack.client()
    for _, _, kwargs, res in sent:
        job_id = kwargs.get("job_id") if isinstance(kwargs.get("job_id"), str) else res.id
        assert not r.exists(f"akool-audio:job:{job_id}"), job_id
    audio = stack.audio_dir
    assert sorted(p.name for p in audio.iterdir() if not p.name.startswith(".")) == sorted(
        f"{j}.wav" for j in good
    )


def test_positional_arguments_are_refused(stack: Stack) -> None:
    before = stack.sandbox.stats()["requests"]["create"]
    res = stack.caller.send_task("audio.create", args=["Hello there.", VOICE], queue="audio")
    assert "positional" in failure(res)
    assert stack.sandbox.stats()["requests"]["create"] == before


def test_same_job_id_with_another_payload_is_refused(stack: Stack) -> None:
    job_id = f"order-{uuid.uuid4().hex[:8]}"
    before = stack.sandbox.stats()["submissions"]
    first = stack.caller.send_task(
        "audio.create", kwargs={**OK, "job_id": job_id}, queue="audio"
    ).get(timeout=60)
    assert first["state"] == "succeeded"
    again = stack.caller.send_task(
        "audio.create", kwargs={**OK, "job_id": job_id, "rate": "90%"}, queue="audio"
    )
    assert "job_id" in failure(again)
    assert stack.sandbox.stats()["submissions"] == before + 1
    assert Path(first["file"]).name == f"{job_id}.wav"


def test_an_unknown_voice_fails_the_job_and_creates_nothing(stack: Stack) -> None:
    # A well-formed id that is not in the voice list is only known to Akool (or to the voice
    # cache when it is fresh): either the task is refused or the job fails with Akool's 1003.
    before = stack.sandbox.stats()["submissions"]
    res = stack.caller.send_task(
        "audio.create", kwargs={**OK, "voice_id": "NoSuchVoice0000000000"}, queue="audio"
    )
    res.get(timeout=60, propagate=False)
    if res.state == "FAILURE":
        assert "voice_id" in str(res.result)
    else:
        summary = res.result
        assert summary["state"] == "failed"
        assert summary["error"]["code"] == "1003"
        assert "voice" in summary["error"]["message"].lower()
    assert stack.sandbox.stats()["submissions"] == before
