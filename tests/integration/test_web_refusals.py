"""Bad requests to a real ``akool-audio web`` process: each is answered 4xx with a JSON message
(naming the field when one is at fault), and nothing is recorded or sent. No worker consumes
here, so a message the service sent would still sit in Redis: the database must stay empty, and
the sandbox must see no request at all. The last tests check that one good request does leave
its record and its message (so the checks above can fail), and that the service refuses to
start without tokens."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import VOICES, SandboxServer
from tests.support.procs import Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN, TEST_TOKEN, web
from tests.support.webclient import WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
OK: dict[str, Any] = {"kind": "create", "input_text": "A fine sentence.", "voice_id": VOICE}
JSON_CT = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(scope="module")
def env(
    redis_server: RedisServer, sb: SandboxServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    # Dozens of refusals in a second from one token: no API_RATE_LIMIT here (test_api_rate.py).
    return worker_env(
        redis_server.url,
        sb.url,
        tmp_path_factory.mktemp("refusals") / "audio",
        {"API_RATE_LIMIT": "0"},
    )


@pytest.fixture(scope="module")
def client(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebClient]:
    port = free_port()
    proc = web(env, tmp_path_factory.mktemp("web") / "web.log", port).start()
    yield WebClient(port, TEST_TOKEN)
    proc.stop()


# (name, method, path, body, extra headers, status, field)
Case = tuple[str, str, str, Any, dict[str, str], int, str | None]
J = "/v1/jobs"
CASES: list[Case] = [
    ("text is a number", "POST", J, {**OK, "input_text": 42}, {}, 400, "input_text"),
    ("text is a list", "POST", J, {**OK, "input_text": ["a"]}, {}, 400, "input_text"),
    ("text missing", "POST", J, {"kind": "create", "voice_id": VOICE}, {}, 400, "input_text"),
    ("text blank", "POST", J, {**OK, "input_text": "  \n "}, {}, 400, "input_text"),
    ("text 5001 words", "POST", J, {**OK, "input_text": "w " * 5001}, {}, 400, "input_text"),
    ("text NUL", "POST", J, {**OK, "input_text": "a\x00b"}, {}, 400, "input_text"),
    (
        "text lone surrogate",
        "POST",
        J,
        b'{"kind":"create","input_text":"a \\ud800","voice_id":"v"}',
        JSON_CT,
        400,
        "input_text",
    ),
    ("voice missing", "POST", J, {"kind": "create", "input_text": "Hi"}, {}, 400, "voice_id"),
    ("voice a number", "POST", J, {**OK, "voice_id": 7}, {}, 400, "voice_id"),
    ("voice traversal", "POST", J, {**OK, "voice_id": "../../etc/passwd"}, {}, 400, "voice_id"),
    ("rate 0%", "POST", J, {**OK, "rate": "0%"}, {}, 400, "rate"),
    ("rate 150%", "POST", J, {**OK, "rate": "150%"}, {}, 400, "rate"),
    ("rate a number", "POST", J, {**OK, "rate": 100}, {}, 400, "rate"),
    (
        "rate NaN",
        "POST",
        J,
        b'{"kind":"create","input_text":"Hi","voice_id":"v","rate":NaN}',
        JSON_CT,
        400,
        None,
    ),
    ("unknown field", "POST", J, {**OK, "voiceId": VOICE}, {}, 400, "voiceId"),
    ("unknown field, long", "POST", J, {**OK, "x" * 300: "y"}, {}, 400, "x" * 60),
    (
        "voice_url on create",
        "POST",
        J,
        {**OK, "voice_url": "https://x.test/a"},
        {},
        400,
        "voice_url",
    ),
    ("notify_task", "POST", J, {**OK, "notify_task": "my.task"}, {}, 400, "notify_task"),
    ("notify_queue", "POST", J, {**OK, "notify_queue": "celery"}, {}, 400, "notify_queue"),
    ("kind missing", "POST", J, {"input_text": "Hi", "voice_id": VOICE}, {}, 400, "kind"),
    ("kind unknown", "POST", J, {**OK, "kind": "delete"}, {}, 400, "kind"),
    ("kind a list", "POST", J, {**OK, "kind": ["create"]}, {}, 400, "kind"),
    (
        "clone without a voice",
        "POST",
        J,
        {"kind": "clone", "input_text": "Hi"},
        {},
        400,
        "voice_url",
    ),
    (
        "clone both voices",
        "POST",
        J,
        {"kind": "clone", "input_text": "Hi", "voice_id": VOICE, "voice_url": "https://x.test/a"},
        {},
        400,
        "voice_url",
    ),
    (
        "clone file://",
        "POST",
        J,
        {"kind": "clone", "input_text": "Hi", "voice_url": "file:///etc/passwd"},
        {},
        400,
        "voice_url",
    ),
    ("job_id with a space", "POST", J, {**OK, "job_id": "a b"}, {}, 400, "job_id"),
    ("job_id with a newline", "POST", J, {**OK, "job_id": "a\nb"}, {}, 400, "job_id"),
    (
        "job_id header injection",
        "POST",
        J,
        {**OK, "job_id": "x\r\nSet-Cookie: a=b"},
        {},
        400,
        "job_id",
    ),
    ("job_id traversal", "POST", J, {**OK, "job_id": "../../etc/passwd"}, {}, 400, "job_id"),
    ("job_id 129 chars", "POST", J, {**OK, "job_id": "j" * 129}, {}, 400, "job_id"),
    ("job_id a number", "POST", J, {**OK, "job_id": 12}, {}, 400, "job_id"),
    (
        "notify_url private",
        "POST",
        J,
        {**OK, "notify_url": "http://10.0.0.5/hook"},
        {},
        400,
        "notify_url",
    ),
    (
        "notify_url metadata",
        "POST",
        J,
        {**OK, "notify_url": "http://169.254.169.254/x"},
        {},
        400,
        "notify_url",
    ),
    (
        "notify_url header injection",
        "POST",
        J,
        {**OK, "notify_url": "https://x.test/a\r\nX-Injected: 1"},
        {},
        400,
        "notify_url",
    ),
    ("notify_url ftp", "POST", J, {**OK, "notify_url": "ftp://x.test/a"}, {}, 400, "notify_url"),
    ("body over 64 KB", "POST", J, {**OK, "input_text": "word " * 14000}, {}, 413, None),
    ("body not JSON", "POST", J, b"{not json", JSON_CT, 400, None),
    ("body empty", "POST", J, b"", JSON_CT, 400, None),
    ("body a JSON array", "POST", J, b"[1, 2]", JSON_CT, 400, "body"),
    ("body a JSON string", "POST", J, b'"create"', JSON_CT, 400, "body"),
    ("body nested 20000 deep", "POST", J, b"[" * 20000 + b"]" * 20000, JSON_CT, 400, None),
    ("body not UTF-8", "POST", J, b'{"kind": "\xff\xfe"}', JSON_CT, 400, None),
    (
        "wrong content type",
        "POST",
        J,
        b'{"kind": "create"}',
        {"Content-Type": "text/plain"},
        415,
        None,
    ),
    (
        "form body",
        "POST",
        J,
        b"kind=create",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        None,
    ),
    ("no content type", "POST", J, b'{"kind": "create"}', {}, 415, None),
    ("path traversal", "GET", "/v1/jobs/..%2f..%2fetc", None, {}, 400, "job_id"),
    (
        "path traversal, cancel",
        "POST",
        "/v1/jobs/..%2f..%2fetc%2fpasswd/cancel",
        None,
        {},
        400,
        "job_id",
    ),
    ("path traversal, retry", "POST", "/v1/jobs/%2e%2e/retry", None, {}, 400, "job_id"),
    ("CR LF in a path id", "GET", "/v1/jobs/a%0d%0aX-Injected:%20yes", None, {}, 400, "job_id"),
    ("space in a path id", "GET", "/v1/jobs/a%20b", None, {}, 400, "job_id"),
    ("unknown job", "GET", "/v1/jobs/no-such-job", None, {}, 404, "job_id"),
    ("cancel an unknown job", "POST", "/v1/jobs/no-such-job/cancel", None, {}, 404, "job_id"),
    ("retry an unknown job", "POST", "/v1/jobs/no-such-job/retry", None, {}, 404, "job_id"),
    ("limit 0", "GET", "/v1/jobs?limit=0", None, {}, 400, "limit"),
    ("limit 201", "GET", "/v1/jobs?limit=201", None, {}, 400, "limit"),
    ("limit a word", "GET", "/v1/jobs?limit=ten", None, {}, 400, "limit"),
    ("limit negative", "GET", "/v1/jobs?limit=-1", None, {}, 400, "limit"),
    ("state unknown", "GET", "/v1/jobs?state=done", None, {}, 400, "state"),
    ("cursor garbage", "GET", "/v1/jobs?cursor=%21%21%21", None, {}, 400, "cursor"),
    ("cursor not ours", "GET", "/v1/jobs?cursor=bm90LW91cnM", None, {}, 400, "cursor"),
    ("q with a wildcard", "GET", "/v1/jobs?q=%2A", None, {}, 400, "q"),
    ("q with CR LF", "GET", "/v1/jobs?q=a%0d%0ab", None, {}, 400, "q"),
    ("unknown parameter", "GET", "/v1/jobs?limt=5", None, {}, 400, "limt"),
    ("parameter twice", "GET", "/v1/jobs?state=failed&state=succeeded", None, {}, 400, "state"),
    ("PUT on the jobs", "PUT", J, {}, {}, 405, None),
    ("DELETE a job", "DELETE", "/v1/jobs/some-job", None, {}, 405, None),
    ("GET a cancel", "GET", "/v1/jobs/some-job/cancel", None, {}, 405, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_request_is_refused_with_a_message_and_changes_nothing(
    client: WebClient, redis_server: RedisServer, sb: SandboxServer, case: Case
) -> None:
    _, method, path, body, headers, status, field = case
    got = client.call(method, path, body, headers=headers)
    assert got.status == status, got.raw[:300]
    error = got.error
    assert error.get("field") == field if field is not None else True
    assert TEST_TOKEN not in got.raw.decode(errors="replace")
    assert "X-Injected" not in got.headers and "Set-Cookie" not in got.headers
    assert redis_server.client().dbsize() == 0  # no record, no message, nothing at all
    assert sum(sb.stats()["requests"].values()) == 0


def test_there_are_more_than_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_a_good_request_leaves_its_record_and_its_message(
    client: WebClient, redis_server: RedisServer
) -> None:
    got = client.post("/v1/jobs", {**OK, "job_id": "the-good-one"})
    assert got.status == 202, got.raw
    r = redis_server.client()
    assert r.exists("akool-audio:job:the-good-one")
    assert r.llen("audio") == 1  # sent, and nobody consumes here


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("server", ["akool-audio web", "gunicorn"])
def test_without_tokens_the_service_exits_with_the_reason(env: dict[str, str], server: str) -> None:
    port = str(free_port())
    if server == "gunicorn":
        args = [
            str(BIN / "gunicorn"),
            "-c",
            "python:worker.web.gunicorn_conf",
            "worker.web.app:application",
        ]
    else:
        args = [str(BIN / "akool-audio"), "web", "--port", port]
    bare = {k: v for k, v in env.items() if not k.startswith("API_")}
    done = _run(args, {**bare, "WEB_PORT": port})
    assert done.returncode == 2, done.stderr[-2000:]
    assert "configuration error" in done.stderr
    for name in ("API_TOKENS", "API_TOKENS_FILE", "API_AUTH=off"):
        assert name in done.stderr


def test_api_auth_off_serves_without_tokens_and_health_says_when_redis_is_gone(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc: Proc = web({**env, "API_AUTH": "off", "REDIS_URL": dead}, tmp_path / "web.log", port)
    proc.start()
    try:
        c = WebClient(port, None)
        health = c.get("/healthz")
        assert health.status == 503 and health.json == {
            "status": "unavailable",
            "redis": "unreachable",
        }
        listed = c.get("/v1/jobs")
        assert listed.status == 503 and "Redis" in listed.error["message"]  # not 401
        assert c.get("/v1/openapi.json").status == 200
    finally:
        proc.stop()
    assert "API_AUTH=off" in proc.text()


def test_without_auth_a_cross_site_form_and_a_rebound_host_are_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    # Issue 23, finding 3: with API_AUTH=off a form on any site could POST a retry (a paid
    # submit), and a DNS-rebinding page (its own name, our address) could read every job.
    port = free_port()
    proc: Proc = web({**env, "API_AUTH": "off"}, tmp_path / "web.log", port).start()
    try:
        c = WebClient(port, None)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        cross = c.post(
            "/v1/jobs/some-job/retry", b"x=1", headers={**form, "Origin": "https://evil.test"}
        )
        assert cross.status == 403 and "same-origin" in cross.error["message"]
        fetched = c.post("/v1/jobs/some-job/retry", b"", headers={"Sec-Fetch-Site": "cross-site"})
        assert fetched.status == 403
        # curl, a backend: no browser header, past the check (no such job)
        assert c.post("/v1/jobs/some-job/retry").status == 404
        own = c.post("/v1/jobs/some-job/retry", headers={"Origin": f"http://127.0.0.1:{port}"})
        assert own.status == 404
        for path in ("/v1/jobs", "/metrics", "/healthz"):
            rebound = c.get(path, headers={"Host": f"rebind.evil.test:{port}"})
            assert rebound.status == 421, path
            assert "WEB_ALLOWED_HOSTS" in rebound.error["message"]
            assert rebound.headers["X-Content-Type-Options"] == "nosniff"
            assert c.get(path, headers={"Host": f"localhost:{port}"}).status == 200
    finally:
        proc.stop()


def test_a_token_guesser_is_throttled_across_requests(
    client: WebClient, redis_server: RedisServer
) -> None:
    limit = 10  # AUTH_FAILURE_LIMIT's default
    got = [client.get("/v1/jobs", token=f"guess-{n:02d}-0123456789").status for n in range(limit)]
    assert got == [401] * limit
    refused = client.get("/v1/jobs", token="guess-last-0123456789")
    assert refused.status == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/v1/jobs").status == 429  # the right token too, from this address
    redis_server.client().flushdb()  # the other tests of this module use the right token
    assert client.get("/v1/jobs").status == 200
