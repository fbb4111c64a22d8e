"""Downloads and notifications connect to the address the guard checked, and to no other.

A resolver this test controls answers a name with 127.0.0.2 (allowlisted) at the first lookup
and 127.0.0.1 (not allowlisted) at the next: DNS rebinding between loopback addresses, with a
server listening on both. The request must land on 127.0.0.2, resolve the name once, and the
next request (now answered 127.0.0.1) must be refused without a connection. Over HTTPS the
certificate is verified against the name, not the address. Nothing connects outside loopback
(an audit hook refuses it)."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.tls import TestCA
from worker.egress import notify
from worker.egress.download import DownloadRefused, DownloadTransient, download
from worker.egress.netguard import check_url
from worker.egress.pinned import egress_session

AUDIO = b"ID3" + b"\x00" * 997

_outside: list[Any] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # Every socket connect of this process: one to a non-loopback address fails the test.
    if event == "socket.connect" and isinstance(args[1], tuple):
        try:
            ip = ipaddress.ip_address(args[1][0])
        except ValueError:
            return
        if not ip.is_loopback:
            _outside.append(args[1])
            raise ConnectionRefusedError(f"test: no connection outside loopback ({ip})")


sys.addaudithook(_audit)


class Resolver:
    """``socket.getaddrinfo`` for the names it is told: each lookup of a name takes the next
    of its answers (the last one repeats); an answer is one address or a tuple of them. Other
    names go to the system's resolver."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.answers: dict[str, list[str | tuple[str, ...]]] = {}
        self.lookups: list[str] = []

    def answer(self, name: str, *lookups: str | tuple[str, ...]) -> None:
        self.answers[name] = list(lookups)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        out = []
        for address in (answer,) if isinstance(answer, str) else answer:
            v6 = ":" in address
            family = socket.AF_INET6 if v6 else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if v6 else (address, int(port or 0))
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out


@pytest.fixture()
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resolver]:
    r = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", r)
    _outside.clear()
    yield r
    assert _outside == [], "a connection outside loopback was attempted"


@contextmanager
def server(
    host: str, port: int, hits: list[str], *, tls: ssl.SSLContext | None = None,
    location: str | None = None,
) -> Iterator[int]:  # fmt: skip
    """An HTTP(S) server on ``host:port`` (0: any free port) recording ``host path`` per hit;
    it serves AUDIO, or redirects to ``location``."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            hits.append(f"{host} {self.command} {self.path} {self.headers.get('Host')}")
            if self.command == "POST":
                self.rfile.read(int(self.headers.get("content-length", 0)))
            if location:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(AUDIO)))
            self.end_headers()
            self.wfile.write(AUDIO)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextmanager
def twin_servers(hits: list[str], tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """Servers on 127.0.0.2 and 127.0.0.1 at the same port: whichever address a client
    connects to answers, and says which it was."""
    for _ in range(20):
        with server("127.0.0.2", 0, hits, tls=tls) as port:
            try:
                with server("127.0.0.1", port, hits, tls=tls):
                    yield port
                    return
            except OSError:
                continue  # the port is taken on 127.0.0.1: another one
    raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")


ONLY_2 = ("127.0.0.2",)


def test_a_download_connects_to_the_checked_address_and_a_rebound_name_is_refused(
    resolver: Resolver, tmp_path: Path
) -> None:
    hits: list[str] = []
    resolver.answer("rebind.test", "127.0.0.2", "127.0.0.1")
    with twin_servers(hits) as port, egress_session() as session:
        url = f"http://rebind.test:{port}/a.mp3"
        got = download(session, url, tmp_path, "job-1", max_bytes=10**6, timeout=5,
                       allow_hosts=ONLY_2)  # fmt: skip
        assert got.bytes == len(AUDIO)
        assert hits == [f"127.0.0.2 GET /a.mp3 rebind.test:{port}"]  # the name, in Host
        assert resolver.lookups == ["rebind.test"]  # resolved once: by the check
        # The next lookup answers 127.0.0.1: refused, and nothing reached 127.0.0.1.
        with pytest.raises(DownloadRefused, match=r"127\.0\.0\.1"):
            download(session, url, tmp_path, "job-2", max_bytes=10**6, timeout=5,
                     allow_hosts=ONLY_2)  # fmt: skip
    assert not any(h.startswith("127.0.0.1") for h in hits)
    assert not (tmp_path / "job-2.mp3").exists()


def test_without_pinning_the_same_resolver_would_reach_the_other_address(
    resolver: Resolver,
) -> None:
    # The control: the check alone (then requests resolving again) lands on 127.0.0.1. This
    # is what the pinning above prevents, so the test above can fail.
    hits: list[str] = []
    resolver.answer("rebind.test", "127.0.0.2", "127.0.0.1")
    with twin_servers(hits) as port:
        url = f"http://rebind.test:{port}/a.mp3"
        check_url(url, ONLY_2)
        requests.get(url, timeout=5, proxies={"http": "", "https": ""})
    assert [h.split()[0] for h in hits] == ["127.0.0.1"]


def test_every_redirect_hop_is_pinned_too(resolver: Resolver, tmp_path: Path) -> None:
    hits: list[str] = []
    resolver.answer("rebind.test", "127.0.0.2", "127.0.0.1")
    with twin_servers(hits) as port:
        target = f"http://rebind.test:{port}/b.mp3"
        with server("127.0.0.3", 0, hits, location=target) as front_port:
            url = f"http://front.test:{front_port}/a.mp3"
            resolver.answer("front.test", "127.0.0.3")
            got = download(requests.Session(), url, tmp_path, "job", max_bytes=10**6,
                           timeout=5, allow_hosts=("127.0.0.2", "front.test"))  # fmt: skip
    assert got.bytes == len(AUDIO)
    assert [h.split()[0] for h in hits] == ["127.0.0.3", "127.0.0.2"]


def test_a_notification_posts_to_the_checked_address_only(resolver: Resolver) -> None:
    hits: list[str] = []
    resolver.answer("hooks.test", "127.0.0.2", "127.0.0.1")
    with twin_servers(hits) as port, egress_session() as session:
        url = f"http://hooks.test:{port}/hook"
        assert notify.post(session, url, {"job_id": "j"}, "k", timeout=5, allow_hosts=ONLY_2) == 200
        with pytest.raises(notify.NotifyError, match="refused") as refused:
            notify.post(session, url, {"job_id": "j"}, "k", timeout=5, allow_hosts=ONLY_2)
        assert not refused.value.retryable
    assert hits == [f"127.0.0.2 POST /hook hooks.test:{port}"]


def test_an_unreachable_first_address_falls_back_to_the_next_checked_one(
    resolver: Resolver, tmp_path: Path
) -> None:
    # localhost often answers ::1 then 127.0.0.1; a server on one of them only must still be
    # reached, as before pinning, and only at an address that was checked.
    hits: list[str] = []
    with server("127.0.0.2", 0, hits) as port:
        resolver.answer("two.test", ("127.0.0.3", "127.0.0.2"))  # nothing listens on .3
        got = download(egress_session(), f"http://two.test:{port}/a.mp3", tmp_path, "j",
                       max_bytes=10**6, timeout=5, allow_hosts=("two.test",))  # fmt: skip
    assert got.bytes == len(AUDIO) and [h.split()[0] for h in hits] == ["127.0.0.2"]
    assert resolver.lookups == ["two.test"]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


def _tls_server(ca: TestCA, name: str) -> ssl.SSLContext:
    issued = ca.issue(name.replace(".", "-"), names=(name,), ips=())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(issued.cert, issued.key)
    return context


def test_https_keeps_the_name_for_sni_and_the_certificate(
    resolver: Resolver, ca: TestCA, tmp_path: Path
) -> None:
    hits: list[str] = []
    resolver.answer("files.test", "127.0.0.2", "127.0.0.1")
    with twin_servers(hits, tls=_tls_server(ca, "files.test")) as port:
        session = egress_session()
        session.verify = str(ca.pem)
        got = download(session, f"https://files.test:{port}/a.mp3", tmp_path, "job",
                       max_bytes=10**6, timeout=5, allow_hosts=ONLY_2)  # fmt: skip
    assert got.bytes == len(AUDIO)
    assert [h.split()[0] for h in hits] == ["127.0.0.2"]


def test_https_still_refuses_a_certificate_for_another_name(
    resolver: Resolver, ca: TestCA, tmp_path: Path
) -> None:
    hits: list[str] = []
    resolver.answer("files.test", "127.0.0.2")
    with twin_servers(hits, tls=_tls_server(ca, "other.test")) as port:
        session = egress_session()
        session.verify = str(ca.pem)
        with pytest.raises(DownloadTransient, match="SSLError"):
            download(session, f"https://files.test:{port}/a.mp3", tmp_path, "job",
                     max_bytes=10**6, timeout=5, allow_hosts=ONLY_2)  # fmt: skip
    assert hits == []
