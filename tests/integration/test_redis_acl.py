"""The whole pipeline as a Redis ACL user with only what docs/OPERATIONS.md grants it.

A redis-server whose ``default`` user is off gets the user exactly as the docs write it (their
``ACL SETUSER`` lines, run as they stand). A worker (gossip and mingle on), beat, the web service,
Flower and a caller that sends jobs and waits for their results all log in as that user, the
worker with its ``REDIS_URL`` from a file. Every job succeeds and ``ACL LOG`` stays empty: no
component needed anything the docs do not grant. The user cannot run admin commands or touch
other keys, and a wrong password stops a worker at start."""

from __future__ import annotations

import base64
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from sandbox import VOICES, SandboxServer
from tests.support.procs import CELERY, ROOT, CeleryWorker, worker_env
from tests.support.redis import RedisProc, acl_server, free_port
from tests.support.services import TEST_TOKEN, beat, flower, web
from tests.support.stack import NotifyReceiver, caller_app
from tests.support.wait import until
from tests.support.webclient import WebClient

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
DOCS = ROOT / "docs" / "OPERATIONS.md"
ADMIN = "admin-pass-for-the-test-0451"
PASSWORD = "akool-acl-pass-9c3f"


def documented_user() -> list[list[str]]:
    """The ``ACL SETUSER`` lines of docs/OPERATIONS.md, as argument lists."""
    lines = re.findall(r"^ACL SETUSER .+$", DOCS.read_text(), flags=re.MULTILINE)
    assert len(lines) >= 5, "docs/OPERATIONS.md lost its ACL user"
    return [line.replace("CHANGE-ME", PASSWORD).split() for line in lines]


@pytest.fixture(scope="module")
def acl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProc]:
    server = acl_server(tmp_path_factory.mktemp("acl"), [], ADMIN).start()
    admin = server.probe()
    for args in documented_user():
        run(admin, args)
    admin.acl_log_reset()
    try:
        yield server
    finally:
        server.stop()


def run(r: redis.Redis, args: Sequence[str]) -> object:
    return r.execute_command(*args)  # type: ignore[no-untyped-call]


def admin_of(server: RedisProc) -> redis.Redis:
    return redis.Redis(port=server.port, username="admin", password=ADMIN, decode_responses=True)


def url(server: RedisProc, password: str = PASSWORD) -> str:
    return f"redis://akool:{password}@127.0.0.1:{server.port}/0"


def test_the_user_can_do_nothing_else(acl: RedisProc) -> None:
    r = redis.Redis.from_url(url(acl))
    assert r.ping()
    for command in (("KEYS", "*"), ("FLUSHALL",), ("CONFIG", "GET", "*"), ("GET", "other:key")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            run(r, command)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=acl.port).ping()  # the default user is off
    admin_of(acl).acl_log_reset()


def test_the_whole_pipeline_runs_as_the_documented_user(
    acl: RedisProc, make_module_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sb = make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})
    secret = tmp_path / "redis_url"
    secret.write_text(url(acl) + "\n")
    env = worker_env(url(acl), sb.url, tmp_path / "audio", {"SWEEP_INTERVAL": "2",
                     "VOICE_REFRESH_INTERVAL": "3", "VOICE_CACHE_TTL": "10"})  # fmt: skip
    filed = {k: v for k, v in env.items() if k != "REDIS_URL"}
    filed["REDIS_URL_FILE"] = str(secret)  # the worker reads its URL, password and all, from a file
    web_port, flower_port = free_port(), free_port()
    w = CeleryWorker(filed, tmp_path / "worker.log", options=()).start(timeout=60)
    b = beat(env, tmp_path / "beat.log").start()
    s = web(env, tmp_path / "web.log", web_port).start()
    fl = flower({**env, "FLOWER_BASIC_AUTH": "ops:acl-flower-pass"}, tmp_path / "fl.log",
                flower_port).start()  # fmt: skip
    caller = caller_app(url(acl))
    admin = admin_of(acl)
    try:
        with NotifyReceiver() as receiver:
            sent = [
                caller.send_task(
                    "audio.create",
                    kwargs={"input_text": f"As a restricted user, {i}.", "voice_id": VOICE,
                            "job_id": f"acl-{i}", "notify_url": receiver.url},
                    queue="audio",
                )
                for i in range(3)
            ]  # fmt: skip
            assert [r.get(timeout=90)["state"] for r in sent] == ["succeeded"] * 3
            until(lambda: len(receiver.received) >= 3, 30, "three notifications")
        api = WebClient(web_port, TEST_TOKEN)
        assert api.call("GET", "/v1/jobs/acl-1").json["job"]["state"] == "succeeded"
        assert api.call("GET", "/v1/jobs?limit=5").status == 200
        assert api.call("GET", "/v1/stats").status == 200
        assert api.call("GET", "/metrics").status == 200
        posted = api.call("POST", "/v1/jobs", {"kind": "create", "job_id": "acl-web",
                          "input_text": "Sent over HTTP.", "voice_id": VOICE})  # fmt: skip
        assert posted.status == 202, posted.raw
        until(lambda: api.call("GET", "/v1/jobs/acl-web").json["job"]["state"] == "succeeded",
              60, "the job sent over HTTP")  # fmt: skip
        request = {"input_text": "x", "voice_id": VOICE}
        schedule = {"name": "acl-check", "every": 3600, "task": "audio.create",
                    "job_id": "acl-s-{ts}", "request": request}  # fmt: skip
        assert api.call("POST", "/v1/schedules", schedule).status == 201
        assert api.call("DELETE", "/v1/schedules/acl-check").status == 200
        until(lambda: admin.ttl("akool-audio:redbeat:lock") > 0, 20, "beat's lock")
        until(lambda: admin.exists("akool-audio:voices:ids"), 30, "beat's voice refresh")
        until(lambda: b"w1@" in _flower(flower_port, "/api/workers?refresh=1"), 30, "Flower")
        # Nothing was refused to anyone: the docs grant all that is used.
        log = admin.acl_log()
        assert log == [], log
    finally:
        caller.close()
        fl.stop()
        s.stop()
        b.stop()
        w.stop()
    for proc in (w, b, s, fl):
        assert "NOPERM" not in proc.text(), proc.args[:4]
        assert PASSWORD not in proc.text()


def _flower(port: int, path: str) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:acl-flower-pass").decode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=10) as resp:
            return bytes(resp.read())
    except OSError:
        return b""


def test_a_wrong_password_stops_a_worker_at_start(
    acl: RedisProc, sandbox: SandboxServer, tmp_path: Path
) -> None:
    env = worker_env(url(acl, "not-the-password"), sandbox.url, tmp_path / "audio")
    args = [CELERY, "-A", "worker", "worker", "-P", "solo", "--without-mingle", "--without-gossip"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "configuration error: Redis" in out.stderr and "refused the user" in out.stderr
    assert "not-the-password" not in out.stderr + out.stdout
    admin_of(acl).acl_log_reset()
