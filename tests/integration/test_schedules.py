"""Schedules added while beat runs (worker/maintenance/schedules.py, /v1/schedules,
`akool-audio schedule`) against a real `celery beat -S redbeat.RedBeatScheduler`, a real worker,
the real web service, a real redis-server and the sandbox: an added schedule fires, a removed one
stops, file and maintenance entries are listed and kept, and two beats never fire one twice.

The test environment shrinks BEAT_MAX_LOOP_INTERVAL to 0.5 s (so the shortest schedule allowed
is 1 s) and BEAT_LOCK_TIMEOUT to 3 s; the schedules here fire every 2 s."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from celery import Celery

from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer, free_port
from tests.support.services import BIN, TEST_TOKEN, beat, web
from tests.support.wait import until
from worker.jobs import JobStore
from worker.maintenance import schedules

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
EVERY = 2
AUTH = {"Authorization": f"Bearer {TEST_TOKEN}"}


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    """This module's own empty Redis: no schedule, lock or job of another module."""
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})


@pytest.fixture(scope="module")
def env(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("schedules")
    recurring = tmp / "recurring.yaml"
    recurring.write_text(
        "jobs:\n"
        "  - name: nightly\n"
        "    cron: '0 3 * * *'\n"
        "    job_id: 'nightly-{date}'\n"
        f"    request: {{input_text: 'Good night.', voice_id: {VOICE}}}\n"
    )
    return worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "BEAT_MAX_LOOP_INTERVAL": "0.5",
            "BEAT_LOCK_TIMEOUT": "3",
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


@pytest.fixture(scope="module")
def service(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = web(env, tmp_path_factory.mktemp("web") / "web.log", port).start()
    yield f"http://127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="module")
def app(env: dict[str, str]) -> Celery:
    return schedules.beat_app(Settings.from_env(env))


@pytest.fixture()
def r(redis_server: RedisServer) -> redis.Redis:
    return redis_server.client()


def spec(name: str, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "every": EVERY,
        "job_id": name + "-{ts}",
        "request": {"input_text": text, "voice_id": VOICE},
    }


def job_ids(r: redis.Redis, name: str) -> list[str]:
    """The job records a schedule made (its template is ``<name>-{ts}``)."""
    prefix = "akool-audio:job:"
    keys = (k.removeprefix(prefix) for k in r.scan_iter(f"{prefix}{name}-*"))
    return sorted(k for k in keys if re.fullmatch(rf"{re.escape(name)}-\d+", k))


def runs(r: redis.Redis, name: str) -> int:
    """How many times the worker ran the schedule's maintenance.recurring message."""
    return int(r.hget("akool-audio:recurring:runs", name) or 0)


_SEND = re.compile(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}).*Sending due task (\S+)")


def sends(entry: str, *procs: Proc) -> list[tuple[float, int]]:
    """(time, which beat) of every send of ``entry`` in the beats' logs, oldest first."""
    out = []
    for i, p in enumerate(procs):
        for stamp, name in _SEND.findall(p.text()):
            if name == entry:
                out.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), i))
    return sorted(out)


def store(env: dict[str, str]) -> JobStore:
    s = Settings.from_env(env)
    return JobStore(redis.Redis.from_url(s.redis_url, decode_responses=True), s)


def finished(env: dict[str, str], r: redis.Redis, name: str, count: int) -> list[str]:
    """Wait for ``count`` jobs of the schedule to be final; they all succeeded."""
    jobs = store(env)
    done = until(
        lambda: [j for j in job_ids(r, name) if jobs.get(j).state.is_final][count - 1 :],
        30,
        f"{count} jobs of {name}",
    )
    for job_id in job_ids(r, name):
        job = jobs.get(job_id)
        if job.state.is_final:
            assert job.state.value == "succeeded", job
    return done


def assert_stops(r: redis.Redis, entry: str, name: str, *beats: Proc) -> int:
    """After a removal: the sends stop, and each send ran once and made one job."""
    time.sleep(1.5)  # ok-sleep: a tick under way when the entry was removed may still send
    sent = len(sends(entry, *beats))
    until(lambda: runs(r, name) == sent and len(job_ids(r, name)) == sent, 20, "the last runs")
    time.sleep(3 * EVERY)  # ok-sleep: three intervals without the schedule
    assert len(sends(entry, *beats)) == sent
    assert runs(r, name) == sent and len(job_ids(r, name)) == sent
    return sent


def test_a_schedule_added_by_the_function_fires_until_removed(
    stack: tuple[CeleryWorker, Proc], env: dict[str, str], app: Celery, r: redis.Redis
) -> None:
    _, a = stack
    # Given a running beat, when a schedule is added, then the beat fires it without a restart.
    made = schedules.add(app, Settings.from_env(env), spec("fn-tick", "Function tick."))
    assert made.source == "api" and made.last_run_at is None
    finished(env, r, "fn-tick", 2)
    job = store(env).get(job_ids(r, "fn-tick")[0])
    assert job.request["input_text"] == "Function tick." and job.request["voice_id"] == VOICE
    got = schedules.get(app, "fn-tick")
    assert got.runs >= 2 and got.last_run_at is not None
    assert got.next_run_at is not None and got.next_run_at > got.last_run_at

    # When it is removed, then it stops.
    schedules.remove(app, "fn-tick")
    sent = assert_stops(r, "schedule:fn-tick", "fn-tick", a)
    gaps = [t2 - t1 for (t1, _), (t2, _) in itertools.pairwise(sends("schedule:fn-tick", a))]
    assert min(gaps) >= EVERY * 0.8, gaps
    print(f"fn-tick: {sent} sends, one job each, none after removal")


def test_a_schedule_added_over_http_fires_until_deleted(
    stack: tuple[CeleryWorker, Proc], service: str, env: dict[str, str], r: redis.Redis
) -> None:
    _, a = stack
    url = f"{service}/v1/schedules"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.post(url, json=spec("x", "No token."), timeout=10).status_code == 401

    made = requests.post(url, json=spec("http-tick", "HTTP tick."), headers=AUTH, timeout=10)
    assert made.status_code == 201, made.text
    assert made.headers["Location"].endswith("/v1/schedules/http-tick")
    assert made.json()["source"] == "api" and made.json()["every"] == EVERY
    finished(env, r, "http-tick", 2)
    got = requests.get(f"{url}/http-tick", headers=AUTH, timeout=10).json()
    assert got["runs"] >= 2 and got["last_run_at"] is not None
    assert datetime.fromisoformat(got["next_run_at"]) > datetime.fromisoformat(got["last_run_at"])

    listed = {s["name"]: s for s in requests.get(url, headers=AUTH, timeout=10).json()["schedules"]}
    assert {n: s["source"] for n, s in listed.items()} == {
        "http-tick": "api",
        "nightly": "file",
        "sweep": "maintenance",
        "voices": "maintenance",
        "purge": "maintenance",
    }
    nightly = listed["nightly"]
    assert (nightly["cron"], nightly["every"], nightly["task"]) == (
        "0 3 * * *",
        None,
        "audio.create",
    )
    assert (
        nightly["job_id"] == "nightly-{date}" and nightly["request"]["input_text"] == "Good night."
    )
    assert datetime.fromisoformat(nightly["next_run_at"]).strftime("%H:%M:%S") == "03:00:00"
    assert listed["sweep"]["task"] == "maintenance.sweep" and listed["sweep"]["every"] == 60

    again = requests.post(url, json=spec("http-tick", "Again."), headers=AUTH, timeout=10)
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    taken = requests.post(url, json=spec("nightly", "Mine."), headers=AUTH, timeout=10)
    assert taken.status_code == 409 and "source file" in taken.json()["error"]["message"]
    for name, where in (("nightly", "RECURRING_JOBS_FILE"), ("sweep", "beat configuration")):
        refused = requests.delete(f"{url}/{name}", headers=AUTH, timeout=10)
        assert refused.status_code == 409 and where in refused.json()["error"]["message"]

    gone = requests.delete(f"{url}/http-tick", headers=AUTH, timeout=10)
    assert gone.status_code == 200 and gone.json()["deleted"]["name"] == "http-tick"
    assert requests.get(f"{url}/http-tick", headers=AUTH, timeout=10).status_code == 404
    assert requests.delete(f"{url}/http-tick", headers=AUTH, timeout=10).status_code == 404
    sent = assert_stops(r, "schedule:http-tick", "http-tick", a)
    names = {s["name"] for s in requests.get(url, headers=AUTH, timeout=10).json()["schedules"]}
    assert names == {"nightly", "sweep", "voices", "purge"}
    print(f"http-tick: {sent} sends, one job each, none after DELETE")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "akool-audio"), "schedule", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line(stack: tuple[CeleryWorker, Proc], env: dict[str, str]) -> None:
    add = ("add", "cli-news", "--every", "60", "--job-id", "cli-news-{minute}")
    made = cli(env, *add, "--input-text", "From the shell.", "--voice-id", VOICE)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["request"] == {
        "input_text": "From the shell.",
        "voice_id": VOICE,
    }
    again = cli(env, *add, "--request", json.dumps({"input_text": "x", "voice_id": VOICE}))
    assert again.returncode == 1 and "exists already" in again.stderr

    table = cli(env, "list")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert rows[0][:3] == ["NAME", "SOURCE", "SCHEDULE"]
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["cli-news"][1:4] == ["api", "every", "60s"]
    assert by_name["nightly"][1:8] == ["file", "cron", "0", "3", "*", "*", "*"]
    assert by_name["sweep"][1] == "maintenance"
    listed = json.loads(cli(env, "list", "--json").stdout)
    assert {s["name"] for s in listed} == {"cli-news", "nightly", "sweep", "voices", "purge"}

    refused = cli(env, "rm", "nightly")
    assert refused.returncode == 1 and "RECURRING_JOBS_FILE" in refused.stderr
    assert cli(env, "rm", "cli-news").returncode == 0
    missing = cli(env, "rm", "cli-news")
    assert missing.returncode == 1 and "no schedule named 'cli-news'" in missing.stderr

    bad_json = cli(env, *add, "--request", "{nope")
    assert bad_json.returncode == 2 and "--request is not JSON" in bad_json.stderr
    bad_rate = cli(env, *add, "--input-text", "Hi.", "--voice-id", VOICE, "--rate", "300%")
    assert bad_rate.returncode == 2 and "rate" in bad_rate.stderr
    too_often = cli(env, "add", "fast", "--every", "0.5", "--job-id", "f-{ts}", "--request", "{}")
    assert too_often.returncode == 2 and "every must be 1 to" in too_often.stderr
    down = cli({**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}, "list")
    assert down.returncode == 3 and "cannot reach Redis" in down.stderr
    assert "cli-news" not in cli(env, "list").stdout


def test_two_beats_never_fire_a_schedule_twice(
    stack: tuple[CeleryWorker, Proc],
    env: dict[str, str],
    app: Celery,
    r: redis.Redis,
    tmp_path: Path,
) -> None:
    _, a = stack
    # Given a standby beat beside the active one, when a schedule is added (neither beat had it
    # at start), then only the lock holder fires it, and the standby continues it alone.
    b = beat(env, tmp_path / "beat-b.log").start()
    try:
        schedules.add(app, Settings.from_env(env), spec("pair", "Pair tick."))
        until(lambda: len(sends("schedule:pair", a)) >= 3, 20, "beat A to fire the schedule")
        assert "Acquired lock" not in b.text()
        assert sends("schedule:pair", b) == []
        a.kill()  # the lock holder dies without releasing its lock
        b.wait_for("beat: Acquired lock", 15)
        until(lambda: len(sends("schedule:pair", b)) >= 3, 20, "beat B to continue it")
        schedules.remove(app, "pair")
        sent = assert_stops(r, "schedule:pair", "pair", a, b)
    finally:
        b.stop()
    times = sends("schedule:pair", a, b)
    gaps = [t2 - t1 for (t1, _), (t2, _) in itertools.pairwise(times)]
    assert min(gaps) >= EVERY * 0.8, gaps
    by = [sum(1 for _, i in times if i == k) for k in (0, 1)]
    print(f"pair: {sent} sends (beat A/B {by}), one job each, smallest gap {min(gaps):.2f} s")
