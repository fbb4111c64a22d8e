"""Beat's schedules against a real `celery beat -S redbeat.RedBeatScheduler`, a real worker, a
real redis-server and the sandbox: sweep, voice cache, purge, recurring jobs, and two beats that
never fire an entry twice. Intervals are shortened through the environment."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN, Proc, beat
from tests.support.stack import caller_app
from tests.support.wait import until
from worker.akool import AkoolClient
from worker.jobs import JobStore
from worker.jobs.request import parse_request

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TICK_EVERY = 2


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    """This module's own empty Redis: beat's sweep, purge, reports, schedule and lock start
    from nothing that other modules left."""
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})


@pytest.fixture(scope="module")
def env(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("beat")
    recurring = tmp / "recurring.yaml"
    recurring.write_text(
        "jobs:\n"
        "  - name: tick\n"
        f"    every: {TICK_EVERY}\n"
        "    job_id: 'tick-{ts}'\n"
        f"    request: {{input_text: 'Tick tock.', voice_id: {VOICE}}}\n"
    )
    return worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "BEAT_MAX_LOOP_INTERVAL": "0.5",
            "BEAT_LOCK_TIMEOUT": "3",
            "SWEEP_INTERVAL": "1",
            "SWEEP_GRACE": "1",
            "VOICE_REFRESH_INTERVAL": "2",
            "VOICE_CACHE_TTL": "60",
            "PURGE_INTERVAL": "1",
            "AUDIO_RETENTION_DAYS": str(1 / 24),  # one hour
            "JOB_RETENTION_DAYS": "1",
            "RECURRING_JOBS_FILE": str(recurring),
        },
    )


@pytest.fixture(scope="module")
def stack(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[CeleryWorker, Proc]]:
    logs = tmp_path_factory.mktemp("logs")
    w = CeleryWorker(env, logs / "worker.log").start()
    b = beat(env, logs / "beat-a.log").start()
    b.wait_for("beat: Acquired lock", 15)
    yield w, b
    b.stop()
    w.stop()


@pytest.fixture()
def r(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


def jobs(env: dict[str, str]) -> JobStore:
    s = Settings.from_env(env)
    return JobStore(redis.Redis.from_url(s.redis_url, decode_responses=True), s)


def report(r: redis.Redis, name: str) -> dict[str, Any] | None:
    raw = r.hget("akool-audio:maintenance", name)
    return json.loads(raw) if raw else None


def request(env: dict[str, str], text: str) -> dict[str, Any]:
    return parse_request(
        "create", {"input_text": text, "voice_id": VOICE}, Settings.from_env(env)
    ).to_record()


def test_sweep_resumes_jobs_whose_messages_were_lost(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], sb: SandboxServer
) -> None:
    # Given four jobs whose messages are gone: one submitted (its poll was lost), one never
    # submitted, one whose submitting worker died (lease expired), one whose lease is live.
    store = jobs(env)
    past = time.time() - 30
    tag = uuid.uuid4().hex[:6]
    client = AkoolClient(sb.url, api_key=env["AKOOL_API_KEY"])
    lost_poll = f"lost-poll-{tag}"
    store.create(lost_poll, "create", request(env, f"Lost poll {tag}."), task_id=f"t-{lost_poll}")
    made = client.create_audio(f"Lost poll {tag}.", VOICE, "100%", None)
    store.record_submitted(lost_poll, made.id, int(made.status), made.url, past)
    never = f"never-{tag}"
    store.create(never, "create", request(env, f"Never sent {tag}."), task_id=f"t-{never}")
    store.set_due(never, past)
    died = f"died-{tag}"
    store.create(died, "create", request(env, f"Worker died {tag}."), task_id=f"t-{died}")
    assert store.begin_submit(died, lease_seconds=0.01) == "go"
    store.set_due(died, past)
    busy = f"busy-{tag}"
    store.create(busy, "create", request(env, f"Busy lease {tag}."), task_id=f"t-{busy}")
    assert store.begin_submit(busy, lease_seconds=3600) == "go"
    store.set_due(busy, past)

    # When beat's sweep runs, then each resumable job finishes without a second POST.
    for job_id in (lost_poll, never, died):
        until(lambda j=job_id: store.get(j).state.is_final, 30, f"{job_id} to finish")
        assert store.get(job_id).state.value == "succeeded", store.get(job_id)
    texts = sb.stats()["creates_by_text"]
    assert texts[f"Lost poll {tag}."] == 1  # only our direct POST: the sweeper only polled
    assert texts[f"Never sent {tag}."] == 1
    assert texts[f"Worker died {tag}."] == 1
    assert store.get(died).ambiguous_submits == 1  # the dead worker's POST is counted
    # The caller's AsyncResult (the entry task id) resolves through the resumed chain.
    caller = caller_app(env["REDIS_URL"])
    try:
        summary = caller.AsyncResult(f"t-{lost_poll}").get(timeout=10)
    finally:
        caller.close()
    assert summary["job_id"] == lost_poll and summary["state"] == "succeeded"
    # A live lease is respected: still submitting, never POSTed.
    assert store.get(busy).state.value == "submitting"
    assert f"Busy lease {tag}." not in texts
    assert store.get(lost_poll).sweeps >= 1
    totals = redis.Redis.from_url(env["REDIS_URL"], decode_responses=True).hgetall(
        "akool-audio:maintenance:totals"
    )
    assert int(totals["sweep.poll"]) >= 1 and int(totals["sweep.submit"]) >= 2, totals
    assert int(totals["sweep.skip"]) >= 1, totals
    print("sweep totals:", {k: v for k, v in totals.items() if k.startswith("sweep.")})


# The CLI must answer within a voice refresh interval (2 s): alone, not beside other stacks.
@pytest.mark.serial
def test_voice_cache_feeds_the_cli_and_refuses_unknown_voices(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], sb: SandboxServer, r: redis.Redis
) -> None:
    got = until(lambda: report(r, "voices"), 15, "a voice refresh")
    assert got["voices"] == len(VOICES)
    before = sb.stats()["requests"]["voices"]
    out = subprocess.run(
        [str(BIN / "akool-audio"), "voices", "--from", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "voice cache" in out.stderr
    assert VOICE in out.stdout
    assert len(out.stdout.strip().splitlines()) == sum(1 for v in VOICES if v["from"] == 3)
    # The CLI read Redis, not Akool (beat may have refreshed once meanwhile).
    assert sb.stats()["requests"]["voices"] - before <= 1

    caller = caller_app(env["REDIS_URL"])
    try:
        bad = caller.send_task(
            "audio.create",
            kwargs={"input_text": "Who speaks?", "voice_id": "NoSuchVoice0000000000"},
            queue="audio",
        )
        with pytest.raises(Exception, match=r"voice_id.*unknown voice_id 'NoSuchVoice"):
            bad.get(timeout=20)
    finally:
        caller.close()
    assert "Who speaks?" not in sb.stats()["creates_by_text"]
    print(
        f"voices: {got['voices']} cached; CLI voice list calls to Akool: "
        f"{sb.stats()['requests']['voices'] - before}"
    )


def test_purge_removes_old_files_records_and_stale_index_entries(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], r: redis.Redis
) -> None:
    audio = Path(env["AUDIO_DIR"])
    audio.mkdir(parents=True, exist_ok=True)
    old, fresh, part = audio / "old-job.wav", audio / "fresh-job.wav", audio / ".x.abc.part"
    for f in (old, fresh, part):
        f.write_bytes(b"RIFF" + b"\0" * 100)
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    os.utime(part, (two_hours_ago, two_hours_ago))
    r.hset(
        "akool-audio:job:ancient",
        mapping={"job_id": "ancient", "state": "succeeded", "completed_at": time.time() - 3e5},
    )
    r.zadd("akool-audio:active", {"ghost": time.time() + 3600})

    until(lambda: not old.exists() and not part.exists(), 15, "old files to be purged")
    until(lambda: not r.exists("akool-audio:job:ancient"), 10, "the old record to go")
    until(lambda: r.zscore("akool-audio:active", "ghost") is None, 10, "the ghost to go")
    assert fresh.exists()
    print(
        "purge totals:",
        {
            k: v
            for k, v in r.hgetall("akool-audio:maintenance:totals").items()
            if k.startswith("purge.")
        },
    )


def test_recurring_jobs_are_enqueued_as_audio_create(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], r: redis.Redis
) -> None:
    store = jobs(env)

    def ticks() -> list[str]:
        return sorted(k.rsplit(":", 1)[1] for k in r.scan_iter("akool-audio:job:tick-*"))

    done = until(lambda: [t for t in ticks() if store.get(t).state.is_final][2:], 20, "three ticks")
    assert done
    for job_id in ticks():
        job = store.find(job_id)
        assert job is not None and job.request["input_text"] == "Tick tock."
    finals = [store.get(t) for t in ticks() if store.get(t).state.is_final]
    assert all(j.state.value == "succeeded" for j in finals), finals
    print(f"recurring: {len(finals)} tick jobs succeeded: {ticks()[:4]}")


_SEND = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*Sending due task (\S+)")


def sends(*procs: Proc) -> list[tuple[float, str, int]]:
    out = []
    for i, p in enumerate(procs):
        for stamp, entry in _SEND.findall(p.text()):
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append((t, entry, i))
    return sorted(out)


def test_two_beats_never_fire_an_entry_twice(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], tmp_path: Path
) -> None:
    _, a = stack
    b = beat(env, tmp_path / "beat-b.log").start()
    try:
        time.sleep(5)  # ok-sleep: both beats run side by side
        assert "Acquired lock" not in b.text()
        assert not [s for s in sends(b) if s], "the standby beat sent a task"
        a.kill()  # the lock holder dies without releasing its lock
        b.wait_for("beat: Acquired lock", 15)
        n = len(sends(b))
        until(lambda: len(sends(b)) >= n + 3, 15, "the standby to take over")
    finally:
        b.stop()
    # Every entry's sends, across both logs, are at least ~one interval apart.
    for entry, every in (("recurring:tick", TICK_EVERY), ("sweep", 1), ("purge", 1)):
        times = [t for t, e, _ in sends(a, b) if e == entry]
        gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
        assert times and min(gaps) >= every * 0.8, (entry, gaps)
        by = [sum(1 for _, e, i in sends(a, b) if e == entry and i == k) for k in (0, 1)]
        print(f"{entry}: sends by beat A/B {by}, smallest gap {min(gaps):.2f} s (every {every} s)")
