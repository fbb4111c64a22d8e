"""The web service's gunicorn worker (worker/web/serving.py): its refusals in JSON, and the
shape of the gunicorn internals it relies on, so that an upgrade that moves them fails here
first."""

from __future__ import annotations

import inspect
import json

import pytest
from gunicorn.http import message, wsgi
from gunicorn.http.errors import (
    InvalidHeaderName,
    InvalidRequestLine,
    LimitRequestHeaders,
    LimitRequestLine,
    UnsupportedTransferCoding,
)
from gunicorn.workers import base_async
from gunicorn.workers.ggevent import GeventWorker

from worker.web import serving
from worker.web.app import MAX_BODY


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (LimitRequestLine(9000, 4094), 414),
        (LimitRequestHeaders("X-Secret: abc"), 431),
        (InvalidRequestLine("GARBAGE"), 400),
        (InvalidHeaderName("Bad Name"), 400),
        (UnsupportedTransferCoding("gzip"), 501),
    ],
)
def test_gunicorns_refusals_map_to_a_status_and_a_message_of_ours(
    exc: Exception, status: int
) -> None:
    got = serving.refusal(exc)
    assert got is not None and got[0] == status
    assert str(exc) not in got[1]  # nothing the client sent is echoed


def test_anything_else_is_not_the_clients_fault() -> None:
    assert serving.refusal(RuntimeError("boom")) is None


def test_an_error_answer_is_whole_json_and_closes_the_connection() -> None:
    raw = serving.error_bytes(431, "too many header fields, or one too large")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert {"Connection: close", "Content-Type: application/json",
            f"Content-Length: {len(body)}"} <= set(lines)  # fmt: skip
    assert json.loads(body) == {
        "error": {
            "code": "headers_too_large",
            "message": "too many header fields, or one too large",
        }
    }


def test_the_limit_is_the_apps() -> None:
    assert serving.MAX_BODY == MAX_BODY


def test_the_gunicorn_internals_used_are_where_they_were() -> None:
    # wsgi.create builds ``Response`` looked up in its module when it is called
    assert "response_class = Response" in inspect.getsource(wsgi.create)
    assert "req._expected_100_continue" in inspect.getsource(wsgi.create)
    assert message.Message._expected_100_continue is False
    # the headers a Response writes first, then the application's
    assert "default_headers()" in inspect.getsource(wsgi.Response.send_headers)
    # the keep-alive loop reads each request head under timeout_ctx, and hands each request
    # to handle_request; a closed connection is StopIteration
    handle = inspect.getsource(base_async.AsyncWorker.handle)
    assert "with self.timeout_ctx():" in handle and "req = next(parser)" in handle
    assert "self.handle_request(listener_name, req, client, addr)" in handle
    assert issubclass(serving.Worker, GeventWorker)
