"""Security properties with real servers on loopback: where downloads and notifications may go,
the size cap, file names, notification signatures, and that no secret is written anywhere."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from sandbox import DEFAULT_API_KEY, DEFAULT_CLIENT_ID
from tests.support.harness import Stack
from tests.support.stack import NotifyReceiver
from tests.support.wait import until
from worker.egress import notify
from worker.egress.download import (
    DownloadRefused,
    DownloadTooLarge,
    DownloadTransient,
    download,
    safe_job_filename,
)

Route = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(host: str, route: Route, hits: list[str]) -> Iterator[str]:
    """``with serve(host, route, hits) as base_url:`` an HTTP server on a free port of ``host``
    that answers every GET and POST with ``route`` and records each path in ``hits``; it shuts
    down when the block exits, failed or not."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            route(self)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def redirect_to(location: str) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", location)
        h.send_header("Content-Length", "0")
        h.end_headers()

    return route


def audio(size: int, *, declare: bool = True) -> Route:
    def route(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "audio/wav")
        if declare:
            h.send_header("Content-Length", str(size))
        h.end_headers()
        chunk = b"\0" * 65536
        sent = 0
        try:
            while sent < size:
                h.wfile.write(chunk[: size - sent])
                sent += min(len(chunk), size - sent)
        except OSError:
            pass  # the client gave up: that is the point

    return route


@pytest.fixture()
def private_target() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.2: loopback, but not the allowlisted 127.0.0.1."""
    hits: list[str] = []
    with serve("127.0.0.2", audio(1000), hits) as url:
        yield url, hits


def netloc(url: str) -> str:
    """The ``host:port`` entry of ``ALLOW_PRIVATE_HOSTS`` that allows ``url``'s server only."""
    return urlsplit(url).netloc


def test_another_port_of_an_allowlisted_host_is_not_reached(tmp_path: Path) -> None:
    """``127.0.0.1:<front>`` opens that port only: neither a redirect nor a notification
    reaches another server of 127.0.0.1 (Redis's port, in the demo)."""
    other_hits: list[str] = []
    with (
        serve("127.0.0.1", audio(1000), other_hits) as other,
        serve("127.0.0.1", redirect_to(f"{other}/a.wav"), []) as front,
    ):
        with requests.Session() as s, pytest.raises(DownloadRefused, match=netloc(other)):
            download(s, f"{front}/a.wav", tmp_path, "job", max_bytes=10**6, timeout=5,
                     allow_hosts=(netloc(front),))  # fmt: skip
        with requests.Session() as s, pytest.raises(notify.NotifyError, match="refused"):
            notify.post(s, f"{other}/hook", {"job_id": "j"}, "k", timeout=5,
                        allow_hosts=(netloc(front),))  # fmt: skip
    assert other_hits == []
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_to_a_loopback_address_not_allowlisted_is_not_followed(
    private_target: tuple[str, list[str]], tmp_path: Path
) -> None:
    target, target_hits = private_target
    hits: list[str] = []
    with serve("127.0.0.1", redirect_to(f"{target}/a.wav"), hits) as front:
        with requests.Session() as s, pytest.raises(DownloadRefused, match=r"127\.0\.0\.2"):
            download(
                s,
                f"{front}/a.wav",
                tmp_path,
                "job-1",
                max_bytes=10**6,
                timeout=5,
                allow_hosts=(netloc(front),),
            )
        # Control: the same redirect is followed when its host is allowlisted.
        with requests.Session() as s:
            got = download(
                s,
                f"{front}/a.wav",
                tmp_path,
                "job-2",
                max_bytes=10**6,
                timeout=5,
                allow_hosts=(netloc(front), netloc(target)),
            )
        assert got.bytes == 1000 and got.path.name == "job-2.wav"
        assert len(target_hits) == 1  # only the allowlisted run reached it
        assert not (tmp_path / "job-1.wav").exists()


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:1/x",
        "gopher://127.0.0.1/x",
        "http://10.0.0.1/x",
    ],
)
def test_redirects_to_other_schemes_or_private_addresses_are_refused(
    location: str, tmp_path: Path
) -> None:
    with (
        serve("127.0.0.1", redirect_to(location), []) as front,
        requests.Session() as s,
        pytest.raises(DownloadRefused),
    ):
        download(
            s,
            f"{front}/a.wav",
            tmp_path,
            "job",
            max_bytes=10**6,
            timeout=5,
            allow_hosts=(netloc(front),),
        )
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_loop_is_cut_short(tmp_path: Path) -> None:
    hits: list[str] = []
    with (
        serve("127.0.0.1", redirect_to("/again"), hits) as front,
        requests.Session() as s,
        pytest.raises(DownloadRefused, match="redirects"),
    ):
        download(
            s,
            f"{front}/a.wav",
            tmp_path,
            "job",
            max_bytes=10**6,
            timeout=5,
            allow_hosts=(netloc(front),),
        )
    assert len(hits) == 6


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "undeclared"])
def test_the_size_cap_holds_even_when_the_server_does_not_declare_the_size(
    declare: bool, tmp_path: Path
) -> None:
    with (
        serve("127.0.0.1", audio(5 * 1024 * 1024, declare=declare), []) as front,
        requests.Session() as s,
        pytest.raises(DownloadTooLarge),
    ):
        download(
            s,
            f"{front}/big.wav",
            tmp_path,
            "job",
            max_bytes=1024 * 1024,
            timeout=5,
            allow_hosts=(netloc(front),),
        )
    assert list(tmp_path.iterdir()) == []  # no file, no partial file


def test_notifications_never_follow_redirects(private_target: tuple[str, list[str]]) -> None:
    target, target_hits = private_target
    with serve("127.0.0.1", redirect_to(f"{target}/hook"), []) as front:
        with requests.Session() as s, pytest.raises(notify.NotifyError, match="302") as err:
            notify.post(
                s, f"{front}/hook", {"job_id": "j"}, "k", timeout=5, allow_hosts=(netloc(front),)
            )
        assert not err.value.retryable
        with requests.Session() as s, pytest.raises(notify.NotifyError, match="refused"):
            notify.post(
                s, f"{target}/hook", {"job_id": "j"}, "k", timeout=5, allow_hosts=(netloc(front),)
            )
    assert target_hits == []


@pytest.mark.parametrize(
    "job_id",
    [
        "../x",
        "..",
        "a/../../b",
        "/etc/passwd",
        "a\\b",
        ".hidden",
        "a\x00b",
        "",
        "x" * 129,
        "a..b",
        "a/b",
        "~root",
        "C:evil",
    ],
)
def test_file_names_come_only_from_valid_job_ids(job_id: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefused):
        safe_job_filename(job_id, "wav")


# --- notification signatures ------------------------------------------------------------

SECRET = "notify-secret-for-tests"
BODY = b'{"job_id":"j","state":"succeeded"}'


def signed(ts: int, body: bytes = BODY, secret: str = SECRET) -> dict[str, str]:
    return {
        notify.TIMESTAMP_HEADER: str(ts),
        notify.SIGNATURE_HEADER: "v1=" + notify.signature(secret, str(ts), body),
    }


@pytest.mark.parametrize(
    ("headers", "body", "ok"),
    [
        (signed(1000), BODY, True),
        (signed(1000 - 299), BODY, True),
        (signed(1000 - 301), BODY, False),  # too old: a replay
        (signed(1000 + 301), BODY, False),  # from the future
        (signed(1000), BODY + b" ", False),  # body changed
        (signed(1000, secret="other"), BODY, False),
        ({**signed(1000), notify.TIMESTAMP_HEADER: "999"}, BODY, False),  # timestamp changed
        ({notify.TIMESTAMP_HEADER: "1000"}, BODY, False),
        ({notify.SIGNATURE_HEADER: signed(1000)[notify.SIGNATURE_HEADER]}, BODY, False),
        ({**signed(1000), notify.TIMESTAMP_HEADER: "1e3"}, BODY, False),
        ({**signed(1000), notify.SIGNATURE_HEADER: "v0=abc"}, BODY, False),
    ],
)
def test_notification_signatures_verify_and_bound_the_timestamp(
    headers: dict[str, str], body: bytes, ok: bool
) -> None:
    assert notify.verify(SECRET, headers, body, tolerance=300, now=1000) is ok


# --- no secret anywhere -----------------------------------------------------------------

NOTIFY_SECRET = "notify-hmac-secret-5b1f"
FLOWER_PASSWORD = "flower-pass-8c2e"
TOKEN_KEY = "akool-audio:akool-token"


def redis_dump(r: Any) -> dict[str, str]:
    """Every key of every type as text, with kombu message bodies (base64) decoded too."""
    out: dict[str, str] = {}
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == "string":
            value: Any = r.get(key)
        elif kind == "hash":
            value = r.hgetall(key)
        elif kind == "list":
            value = r.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(r.smembers(key))
        elif kind == "zset":
            value = r.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            value = r.xrange(key)
        else:
            value = kind
        text = json.dumps(value, default=str)
        for blob in _bodies(value):
            text += "\n" + blob
        out[key] = key + "\n" + text
    return out


def _bodies(value: Any) -> Iterator[str]:
    items = (
        value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
    )
    for item in items:
        if not isinstance(item, str) or '"body"' not in item:
            continue
        try:
            yield base64.b64decode(json.loads(item)["body"]).decode(errors="replace")
        except (ValueError, KeyError, TypeError):
            continue


@pytest.mark.parametrize("mode", ["api_key", "client_credentials"])
def test_no_secret_in_logs_task_messages_results_or_job_records(mode: str, tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    try:
        with NotifyReceiver() as receiver:
            creds = (
                {"AKOOL_API_KEY": DEFAULT_API_KEY}
                if mode == "api_key"
                else {
                    "AKOOL_API_KEY": "",
                    "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
                    "AKOOL_CLIENT_SECRET": DEFAULT_API_KEY,
                }
            )
            env = {
                **creds,
                "NOTIFY_SECRET": NOTIFY_SECRET,
                "FLOWER_BASIC_AUTH": f"admin:{FLOWER_PASSWORD}",
            }
            stack.sandbox.configure(lifecycle={"mode": "polls", "polls": 2})
            stack.worker("w1", env=env)
            ids = stack.enqueue(3, "secret", notify_url=receiver.url)
            assert stack.wait_final(ids, 60) < 60
            assert set(stack.states(ids).values()) == {"succeeded"}
            until(lambda: len(receiver.received) >= 3, 20, "three notifications", interval=0.2)
            assert len(receiver.received) == 3
            r = stack.client()
            dump = redis_dump(r)
            secrets = {
                "api key/client secret": DEFAULT_API_KEY,
                "notify secret": NOTIFY_SECRET,
                "flower password": FLOWER_PASSWORD,
            }
            if mode == "client_credentials":
                secrets["client id"] = DEFAULT_CLIENT_ID
                token = r.get(TOKEN_KEY)
                assert token, "the fleet's token cache is empty"
                secrets["bearer token"] = str(token)
            logs = stack.logs()
            found = []
            for name, value in secrets.items():
                if value in logs:
                    found.append(f"{name} in worker logs")
                for key, text in dump.items():
                    if value in text and not (name == "bearer token" and key == TOKEN_KEY):
                        found.append(f"{name} in redis key {key}")
                for got in receiver.received:
                    if value in got.body.decode() or value in json.dumps(got.headers):
                        found.append(f"{name} in a notification")
            assert not found, found
            # The scan did look at task messages and results: the job texts are there.
            assert any("Reliability run" in t for t in dump.values())
    finally:
        stack.stop()


def test_download_failures_outside_http_are_retryable_not_hangs(tmp_path: Path) -> None:
    hits: list[str] = []
    with serve("127.0.0.1", audio(300_000), hits) as base:
        blocked = tmp_path / "not-a-dir"
        blocked.write_text("AUDIO_DIR must be a directory")
        with pytest.raises(DownloadTransient, match="download failed"):
            download(
                requests.Session(),
                f"{base}/a.wav",
                blocked,
                "job-1",
                max_bytes=10**6,
                timeout=5,
                allow_hosts=(netloc(base),),
            )
        with pytest.raises(DownloadTransient, match="too slow"):
            download(
                requests.Session(),
                f"{base}/a.wav",
                tmp_path,
                "job-2",
                max_bytes=10**6,
                timeout=5,
                allow_hosts=(netloc(base),),
                total_timeout=0.0,
            )
        assert not list(tmp_path.glob("*.part"))  # no half file is left behind
        bad_port = redirect_to("http://127.0.0.1:99999999/x.wav")
        with (
            serve("127.0.0.1", bad_port, hits) as front,
            pytest.raises(DownloadRefused, match="invalid port"),
        ):
            download(
                requests.Session(),
                f"{front}/r",
                tmp_path,
                "job-3",
                max_bytes=10**6,
                timeout=5,
                allow_hosts=(netloc(front),),
            )
