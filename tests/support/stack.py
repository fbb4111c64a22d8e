"""The whole system on loopback for one test module: Redis, the sandbox, workers, a caller."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from celery import Celery


def caller_app(redis_url: str) -> Celery:
    """A bare Celery app as another backend would have: it imports none of our code."""
    app = Celery("caller", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_serializer="json",
    )
    return app


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]


# NotifyReceiver serves on one of these loopback ports, the only ones besides the sandbox's that
# the test workers' ALLOW_PRIVATE_HOSTS opens (tests/support/procs.py). Below Linux's ephemeral
# range (32768+), so no outgoing connection holds one; spread by pid for xdist's processes.
NOTIFY_PORTS = tuple(20000 + (os.getpid() % 1000) * 8 + i for i in range(8))


def _bind_notify_port(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    for port in NOTIFY_PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:  # in use: another receiver of this test, or another program
            continue
    raise RuntimeError(f"no free notify port among {NOTIFY_PORTS}")


@dataclass
class NotifyReceiver:
    """An HTTP endpoint that records what it is sent; the first ``fail_first`` POSTs get
    ``fail_status`` instead. A context manager: ``with NotifyReceiver() as receiver:`` serves
    on a free port of ``NOTIFY_PORTS`` at ``receiver.url`` and shuts the server down on exit."""

    fail_first: int = 0
    fail_status: int = 503
    received: list[Received] = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)
    url: str = field(default="", init=False)
    _server: ThreadingHTTPServer | None = field(default=None, init=False, repr=False)

    def __enter__(self) -> Self:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(outer.fail_status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                outer.received.append(Received(body, dict(self.headers.items())))
                outer.event.set()
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _bind_notify_port(Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def json(self, i: int = 0) -> Any:
        return json.loads(self.received[i].body)


def read_summary(path: Path) -> Any:
    return json.loads(path.read_text())
