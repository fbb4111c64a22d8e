"""The web service's server (the Procfile's ``web`` command) against slow and idle clients and
malformed requests, on loopback: slow request heads and idle sockets do not stop ``/healthz``,
a chunked body over 64 KB gets 413, the server's own refusals are JSON, and kept-alive
connections are held (and said to be held) longer than Node's fetch keeps an idle socket."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox import DEFAULT_CLIENT_ID, SandboxServer
from tests.support.procs import ROOT, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN
from worker.devstack.localredis import free_port
from worker.web.jsonerrors import ErrorCode

TOKEN = "web-server-token-0123456789"
MakeWeb = Callable[[], tuple[Proc, int]]


def procfile_web() -> list[str]:
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    assert command[0] == "gunicorn"
    return [str(BIN / "gunicorn"), *command[1:]]


@pytest.fixture(scope="module")
def make_web(
    private_redis: RedisServer,
    make_module_sandbox: Callable[..., SandboxServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> MakeWeb:
    """The Procfile's web service on a free port (not started)."""
    sandbox_url = make_module_sandbox().url

    def make() -> tuple[Proc, int]:
        tmp = tmp_path_factory.mktemp("web-server")
        port = free_port()
        env = worker_env(
            private_redis.url,
            sandbox_url,
            tmp / "audio",
            {
                "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
                "API_TOKENS": TOKEN,
                "WEB_HOST": "127.0.0.1",
                "WEB_PORT": str(port),
            },
        )
        return Proc(procfile_web(), env, tmp / "web.log", "web service listening"), port

    return make


@pytest.fixture(scope="module")
def port(make_web: MakeWeb) -> Iterator[int]:
    web, port = make_web()
    web.start()
    yield port
    web.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` on a new connection; the answer's status, headers (lower-cased) and body,
    read until the server closes or the body's Content-Length is there."""
    with connect(port) as s:
        s.sendall(data)
        s.settimeout(timeout)
        raw = b""
        while True:
            try:
                got = s.recv(65536)
            except TimeoutError:
                break
            if not got:
                break
            raw += got
            head, sep, body = raw.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(x.lower().split(": ", 1) for x in lines[1:] if ": " in x)
    return int(lines[0].split()[1]), headers, body


def healthz_within(port: int, seconds: float) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def test_slow_clients_and_idle_sockets_do_not_stop_healthz(port: int) -> None:
    # Given 6 clients sending a request head one byte a second, 3 sending a webhook body one
    # byte a second, and 12 idle sockets
    slow = [connect(port) for _ in range(6)]
    bodies = [connect(port) for _ in range(3)]
    idle = [connect(port) for _ in range(12)]
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    for s in bodies:
        s.sendall(
            b"POST /akool/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n"
        )
    stop = threading.Event()

    def drip() -> None:
        for i in range(len(head)):
            if stop.wait(1.0):
                return
            for s in slow:
                with contextlib.suppress(OSError):  # closed by the server: fine
                    s.send(head[i : i + 1])
            for s in bodies:
                with contextlib.suppress(OSError):
                    s.send(b"{")

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        # When /healthz is asked every half second for 6 s
        answered: list[tuple[bool, float]] = []
        end = time.monotonic() + 6
        while time.monotonic() < end:
            t = time.monotonic()
            answered.append((healthz_within(port, 2.0), round(time.monotonic() - t, 2)))
            time.sleep(0.5)
    finally:
        stop.set()
        dripper.join()
        for s in slow + bodies + idle:
            s.close()
    # Then every ask was answered 200 within 2 s
    assert len(answered) >= 4
    assert all(ok for ok, _ in answered), answered


def test_a_chunked_body_over_64_kb_gets_413_in_json(port: int) -> None:
    chunk = b"a" * 16384
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    status, headers, raw = exchange(
        port,
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + body,
    )
    assert status == 413
    assert headers["content-type"] == "application/json"
    assert json.loads(raw) == {
        "error": {"code": "too_large", "message": "the body is larger than 64 KB"}
    }


def test_a_chunked_body_under_64_kb_still_reaches_the_api(port: int) -> None:
    doc = json.dumps({"kind": "create", "voice_id": "v", "input_text": 5}).encode()
    status, _, raw = exchange(
        port,
        b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(doc), doc),
    )
    assert status == 400 and json.loads(raw)["error"]["field"] == "input_text"


def test_a_body_sent_after_100_continue_reaches_the_api(port: int) -> None:
    doc = json.dumps({"kind": "create", "voice_id": "v", "input_text": 5}).encode()
    with connect(port) as s:
        s.sendall(
            b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
            + b"Content-Length: %d\r\n\r\n" % len(doc)
        )
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(doc)
        assert s.recv(65536).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\n\r\n", 400),
    ],
    ids=["414 request line", "431 header", "400 request line", "400 header name"],
)
def test_the_servers_own_refusals_are_json(port: int, request_bytes: bytes, status: int) -> None:
    got, headers, raw = exchange(port, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    doc = json.loads(raw)
    assert set(doc) == {"error"} and doc["error"]["message"]
    assert ErrorCode(doc["error"]["code"]).status == status  # one of the documented list
    assert b"aaaa" not in raw and b"GARBAGE" not in raw  # nothing sent is echoed


def test_keep_alive_is_announced_and_a_socket_idle_4_s_is_still_served(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        first = conn.getresponse()
        first.read()
        announced = re.fullmatch(r"timeout=(\d+)", first.getheader("Keep-Alive") or "")
        assert announced and int(announced.group(1)) >= 5, first.getheader("Keep-Alive")
        sock = conn.sock
        time.sleep(4.2)  # Node's fetch reuses a socket idle up to 4 s
        conn.request("GET", "/healthz")
        second = conn.getresponse()
        assert second.status == 200 and second.read()
        assert conn.sock is sock  # the same connection, not a new one
    finally:
        conn.close()


def test_an_idle_connection_does_not_hold_up_the_stop(make_web: MakeWeb) -> None:
    # Given a service with one idle kept-alive connection (held 15 s otherwise)
    web, port = make_web()
    web.start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        # When it is told to stop
        t = time.monotonic()
        web.stop(timeout=30)
        # Then it stops without waiting for the connection's keep-alive to run out
        assert time.monotonic() - t < 8
        assert "Worker exiting" in web.text()
    finally:
        conn.close()
