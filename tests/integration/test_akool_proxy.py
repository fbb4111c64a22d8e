"""Akool calls honour the environment's proxy settings, read once when the client is made
(worker/akool/http.py): through HTTP_PROXY to a host that exists only behind it, and straight
to the host when NO_PROXY names it. The proxy is a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker.akool.http import AkoolHTTP


class _Proxy(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)  # a proxy is asked for the absolute URL
        body = json.dumps({"code": 1000, "msg": "OK", "data": {"via": "proxy"}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def proxy() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Proxy.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_calls_go_through_the_proxy_of_the_environment(
    proxy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = AkoolHTTP("http://akool.invalid", connect_timeout=2, read_timeout=2)
    monkeypatch.delenv("HTTP_PROXY")  # read once, at construction
    for _ in range(2):
        assert http.request("GET", "/api/open/v3/x")["data"] == {"via": "proxy"}
    assert _Proxy.seen == ["http://akool.invalid/api/open/v3/x"] * 2
    http.close()


def test_no_proxy_sends_straight_to_the_host(proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: must not be used
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    http = AkoolHTTP(proxy, connect_timeout=2, read_timeout=2)
    assert http.request("GET", "/api/open/v3/y")["data"] == {"via": "proxy"}
    assert _Proxy.seen == ["/api/open/v3/y"]  # an origin-form request: no proxy in between
    http.close()
