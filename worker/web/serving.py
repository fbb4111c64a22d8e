"""The web service's gunicorn worker (``worker_class`` in worker/web/gunicorn_conf.py).

gevent, one greenlet per connection, because gunicorn's gthread worker hands a connection to one
of its few threads as soon as it is readable, and that thread then waits on the client for the
rest of the request: five clients sending headers a byte every 2 s, or eight idle sockets, left
``/healthz`` unanswered (issue 23; bench/slowclients.py measures both). Here a slow or idle
client holds a greenlet, and:

- its headers must arrive within gunicorn's ``keepalive`` seconds (the gevent worker reads every
  request's head, the first too, under that timeout), so an idle connection is closed after
  ``keepalive`` seconds, announced on every kept-alive answer (``Keep-Alive: timeout=N``);
- its body is read whole, at most ``MAX_BODY`` bytes and within ``BODY_SECONDS``, before the app
  sees the request: a view never waits on a client, a chunked body over 64 KB gets 413 like a
  declared one, a body that does not come gets 408;
- what gunicorn answers itself (a malformed request, 414, 431, 413, 408, 500) is JSON in the
  app's shape (worker/web/jsonerrors.py), never echoing what the client sent.

Three of gunicorn's internals are used (no public hook does this), all here and pinned by
tests/unit/test_serving.py: ``gunicorn.http.wsgi.Response`` (replaced in the worker process by a
subclass that adds ``Keep-Alive``), ``Request._expected_100_continue`` and ``Request.body``.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gunicorn.http import wsgi
from gunicorn.http.body import Body
from gunicorn.http.errors import (
    ExpectationFailed,
    ForbiddenProxyRequest,
    InvalidChunkExtension,
    InvalidChunkSize,
    InvalidHeader,
    InvalidHeaderName,
    InvalidHTTPVersion,
    InvalidProxyLine,
    InvalidRequestLine,
    InvalidRequestMethod,
    InvalidSchemeHeaders,
    LimitRequestHeaders,
    LimitRequestLine,
    ObsoleteFolding,
    UnsupportedTransferCoding,
)
from gunicorn.workers.ggevent import GeventWorker

from config.settings import Settings
from worker.jobs import batchstore
from worker.web.jsonerrors import ErrorCode, error_body

MAX_BODY = 64 * 1024  # the app's limit too (worker/web/app.py)
#: POST /v1/batches alone may send up to 1,000 job bodies (worker/web/batches.py).
BATCH_PATH = "/v1/batches"
BODY_SECONDS = 30  # a whole body of at most 64 KB: 2 KB/s at least
KEEPALIVE = 15  # idle seconds a kept-alive connection is held; also the header timeout
WORKER_CONNECTIONS = 1000
LINGER_SECONDS, LINGER_BYTES = 2, 1 << 20  # after a refusal, what is still read

#: gunicorn's refusals of a malformed request, with our status and message (the first match).
REFUSALS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], int, str], ...] = (
    (LimitRequestLine, 414, "the request line is too long"),
    (LimitRequestHeaders, 431, "too many header fields, or one too large"),
    (UnsupportedTransferCoding, 501, "unsupported Transfer-Encoding"),
    (ExpectationFailed, 417, "unsupported Expect"),
    (ForbiddenProxyRequest, 403, "forbidden"),
    (
        (
            InvalidRequestLine,
            InvalidRequestMethod,
            InvalidHTTPVersion,
            InvalidHeader,
            InvalidHeaderName,
            InvalidProxyLine,
            InvalidSchemeHeaders,
            ObsoleteFolding,
            InvalidChunkSize,
            InvalidChunkExtension,
        ),
        400,
        "malformed HTTP request",
    ),
)
REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}
TOO_LARGE = "the body is larger than 64 KB"  # jsonerrors.MESSAGES[413]


def bind_for(settings: Settings) -> list[str]:
    host = settings.web_host
    return [f"[{host}]:{settings.web_port}" if ":" in host else f"{host}:{settings.web_port}"]


def refusal(exc: BaseException) -> tuple[int, str] | None:
    """The status and message for a request gunicorn could not parse (None: not the client's
    fault)."""
    for kinds, status, message in REFUSALS:
        if isinstance(exc, kinds):
            return status, message
    return None


def error_bytes(status: int, message: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, its body ``{"error": {"code",
    "message"}}`` (a 400 here is always ``malformed_request``)."""
    code = ErrorCode.MALFORMED_REQUEST if status == 400 else None
    body = json.dumps(error_body(status, message, code=code)).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class KeepAliveResponse(wsgi.Response):
    """gunicorn's response, announcing how long an idle kept-alive connection is held."""

    def default_headers(self) -> list[str]:
        headers: list[str] = super().default_headers()
        if not self.upgrade and not self.should_close():
            headers.append(f"Keep-Alive: timeout={self.cfg.keepalive}\r\n")
        return headers


def declared_length(req: Any) -> int | None:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            return int(value)  # gunicorn's parser has checked it is digits
    return None


def buffer_body(req: Any, sock: Any) -> tuple[int, str] | None:
    """Read ``req``'s whole body now (at most ``MAX_BODY`` bytes, within ``BODY_SECONDS``) and
    put it back as ``req.body``; the refusal (status, message) when it cannot be."""
    length = declared_length(req)
    limit = batchstore.MAX_BODY if req.path == BATCH_PATH else MAX_BODY
    if length is not None and length > limit:
        return 413, TOO_LARGE
    if length == 0:
        return None
    if req._expected_100_continue:  # answered here, before the body is read, not by wsgi.create
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        req._expected_100_continue = False
    try:
        with gevent.Timeout(BODY_SECONDS):
            data = req.body.read(limit + 1)
    except gevent.Timeout:
        return 408, f"the body did not arrive within {BODY_SECONDS} s"
    if len(data) > limit:
        return 413, TOO_LARGE
    req.body = Body(io.BytesIO(data))
    return None


class Worker(GeventWorker):
    """gunicorn's gevent worker that reads whole requests before the app, answers its own
    refusals in JSON and announces its keep-alive (the module's docstring)."""

    def init_process(self) -> None:
        wsgi.Response = KeepAliveResponse  # wsgi.create builds this class (this process only)
        self.idle: set[gevent.Greenlet] = set()
        super().init_process()

    @contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """gunicorn reads each request's head under this: ``keepalive`` seconds at most, and
        the connection counts as idle meanwhile (closed at once when the worker stops)."""
        me = gevent.getcurrent()
        self.idle.add(me)
        try:
            with gevent.Timeout(self.cfg.keepalive, False):
                yield
        finally:
            self.idle.discard(me)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        # Requests under way finish (graceful_timeout); idle connections need not hold the stop.
        gevent.spawn(gevent.killall, list(self.idle), block=False)

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        refused = buffer_body(req, sock)
        if refused is not None:
            status, message = refused
            self.log.warning("refused a request body: %s %s", status, message)
            self._send(sock, status, message)
            raise StopIteration  # gunicorn's way to close this connection
        return super().handle_request(listener_name, req, sock, addr)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, gevent.GreenletExit):
            return  # an idle connection closed as the worker stops
        known = refusal(exc)
        if known is None:
            # gunicorn's own 500 is HTML; ours logs the traceback and answers JSON
            self.log.exception("error handling a request")
            known = 500, "internal error"
        else:
            # the exception's text may quote what the client sent: its class name only
            self.log.warning("refused a request: %s %s", known[0], type(exc).__name__)
        self._send(client, *known)

    def _send(self, sock: Any, status: int, message: str) -> None:
        try:
            sock.sendall(error_bytes(status, message))
            linger(sock)
        except OSError:
            self.log.debug("could not send the %s answer", status)


def linger(sock: Any) -> None:
    """Close our side and read what the client still sends, for a while: closing with its
    bytes unread would reset the connection, and the client could lose the answer with it."""
    sock.shutdown(socket.SHUT_WR)
    with gevent.Timeout(LINGER_SECONDS, False):
        left = LINGER_BYTES
        while left > 0:
            got = sock.recv(min(left, 65536))
            if not got:
                break
            left -= len(got)
