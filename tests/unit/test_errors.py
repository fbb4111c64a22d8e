"""The error tree: code mapping, retryability, context without secrets, pickling, bad records."""

from __future__ import annotations

import inspect
import pickle
from typing import Any

import pytest

from worker.akool import AkoolClient, AudioStatus, errors
from worker.akool.http import summarize_body
from worker.akool.models import parse_job, parse_voices

CODES = [
    (1005, errors.RateLimited, True),
    (1201, errors.TryLater, True),
    (1015, errors.TryLater, True),
    (1101, errors.AuthError, False),
    (1102, errors.AuthError, False),
    (1109, errors.AuthError, False),
    (1006, errors.QuotaExceeded, False),
    (1103, errors.QuotaExceeded, False),
    (1104, errors.QuotaExceeded, False),
    (1213, errors.QuotaExceeded, False),
    (1221, errors.QuotaExceeded, False),
    (1200, errors.AccountBanned, False),
    (1008, errors.NotFound, False),
    (1014, errors.NotFound, False),
    (1003, errors.InvalidParameter, False),
    (1004, errors.APIError, False),
    (1017, errors.APIError, False),
    (9999, errors.APIError, False),
]


@pytest.mark.parametrize(("code", "cls", "retryable"), CODES)
def test_from_code_picks_the_class(code: int, cls: type[errors.APIError], retryable: bool) -> None:
    exc = errors.from_code(code, "some message", endpoint="POST /api/open/v3/audio/create")
    assert type(exc) is cls
    assert exc.code == code
    assert exc.msg == exc.message == "some message"
    assert exc.retryable is retryable
    assert errors.is_retryable(exc) is retryable
    assert str(exc) == (f"some message (code={code}, endpoint=POST /api/open/v3/audio/create)")


HTTP = [(500, True), (502, True), (503, True), (504, True), (429, True), (408, True)]
HTTP += [(400, False), (401, False), (403, False), (404, False), (405, False), (301, False)]


@pytest.mark.parametrize(("status", "retryable"), HTTP)
def test_http_status_retryability(status: int, retryable: bool) -> None:
    exc = errors.HTTPStatusError(status, f"HTTP {status}")
    assert exc.retryable is retryable
    assert exc.http_status == status
    assert errors.is_retryable(exc) is retryable


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (errors.ConfigurationError("no key"), False),
        (errors.ValidationError("rate", "bad"), False),
        (errors.TransportError("x"), True),
        (errors.ConnectTimeout("x"), True),
        (errors.ConnectionFailed("x"), True),
        (errors.ReadTimeout("x"), True),
        (errors.BadResponse("x"), True),
        (ValueError("not ours"), False),
        (TimeoutError("not ours"), False),
    ],
)
def test_is_retryable(exc: BaseException, retryable: bool) -> None:
    assert errors.is_retryable(exc) is retryable


def test_the_tree_is_shallow_and_every_class_says_when_it_is_raised() -> None:
    classes = [
        obj
        for obj in vars(errors).values()
        if inspect.isclass(obj) and issubclass(obj, errors.AkoolError)
    ]
    assert len(classes) == 17
    for cls in classes:
        assert (cls.__doc__ or "").startswith("Raised when"), cls
        depth = [c for c in cls.__mro__ if issubclass(c, errors.AkoolError)]
        assert len(depth) <= 3, cls  # AkoolError -> group -> leaf
    assert issubclass(errors.ValidationError, ValueError)
    assert issubclass(errors.ReadTimeout, errors.TransportError)


@pytest.mark.parametrize(
    "exc",
    [
        errors.from_code(1005, "too frequent", endpoint="GET /x", http_status=200, retry_after=1),
        errors.HTTPStatusError(503, "HTTP 503: Service Unavailable", endpoint="GET /x"),
        errors.ValidationError("rate", "bad"),
        errors.ReadTimeout("read timed out", endpoint="POST /y"),
        errors.BadResponse("not JSON", endpoint="GET /z", http_status=200),
        errors.ConfigurationError("missing"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(exc: errors.AkoolError) -> None:
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert repr(back) == repr(exc)
    assert back.retryable == exc.retryable
    assert vars(back) == vars(exc)


def test_validation_error_message_and_field() -> None:
    exc = errors.ValidationError("voice_id", "must not be empty")
    assert exc.field == "voice_id"
    assert str(exc) == "voice_id: must not be empty"
    assert repr(exc) == "ValidationError('voice_id: must not be empty')"


def test_repr_carries_context() -> None:
    exc = errors.from_code(1101, "token expired", endpoint="GET /v", http_status=401)
    assert repr(exc) == (
        "AuthError('token expired', code=1101, http_status=401, endpoint='GET /v')"
    )


def test_missing_credentials_name_the_settings() -> None:
    with pytest.raises(errors.ConfigurationError) as info:
        AkoolClient("http://127.0.0.1:9")
    assert "AKOOL_API_KEY" in str(info.value)
    assert "AKOOL_CLIENT_ID" in str(info.value)
    assert "AKOOL_CLIENT_SECRET" in str(info.value)
    # a client id without its secret is not enough either
    with pytest.raises(errors.ConfigurationError):
        AkoolClient("http://127.0.0.1:9", client_id="id-only", api_key="")


def test_client_repr_hides_secrets() -> None:
    client = AkoolClient("http://127.0.0.1:9", client_id="cid", client_secret="S3CRET-VALUE")
    try:
        assert "S3CRET" not in repr(client)
        assert "S3CRET" not in repr(client._creds)
    finally:
        client.close()


# -- bodies summarised, records parsed defensively ---------------------------------------------

GATEWAY_PAGE = (
    """<!DOCTYPE html><html><head><title>502 Bad Gateway</title>
<style>body { color: red }</style></head><body><h1>502 Bad Gateway</h1>
<p>nginx</p>"""
    + "<p>filler</p>" * 500
    + "</body></html>"
)


def test_an_html_page_is_summarised_by_its_title() -> None:
    assert summarize_body(GATEWAY_PAGE, "text/html; charset=utf-8") == "502 Bad Gateway"


def test_an_html_page_without_title_loses_its_tags_and_is_cut() -> None:
    page = "<html><body><script>var x = 1;</script><p>Oops &amp; sorry</p>" + "x" * 500
    summary = summarize_body(page, "text/html")
    assert summary.startswith("Oops & sorry")
    assert "<" not in summary and "var x" not in summary
    assert len(summary) <= 203


def test_an_empty_body_is_named() -> None:
    assert summarize_body("  \n", "text/plain") == "empty body"


GOOD_RECORD = {"_id": "65f8017f56559aa67f0ecde7", "status": 3, "url": "https://cdn/a.mp3"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "got NoneType"),
        ([GOOD_RECORD], "got list"),
        ({"status": 3}, "no _id"),
        ({"_id": "", "status": 3}, "no _id"),
        ({"_id": 7, "status": 3}, "no _id"),
        ({"_id": "abc"}, "unknown status (missing)"),
        ({"_id": "abc", "status": 5}, "unknown status (5)"),
        ({"_id": "abc", "status": 0}, "unknown status"),
        ({"_id": "abc", "status": True}, "unknown status"),
        ({"_id": "abc", "status": "done"}, "unknown status"),
        ({"_id": "abc", "status": 2.0}, "unknown status"),
    ],
)
def test_bad_records_are_bad_response(data: Any, message: str) -> None:
    with pytest.raises(errors.BadResponse, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_job(data, endpoint="GET /detail")


def test_records_parse_and_keep_the_raw_record() -> None:
    job = parse_job(dict(GOOD_RECORD, extra=1))
    assert (job.id, job.status, job.url) == (
        GOOD_RECORD["_id"],
        AudioStatus.COMPLETED,
        GOOD_RECORD["url"],
    )
    assert job.raw["extra"] == 1
    queued = parse_job({"_id": "a", "status": "1", "url": ""})
    assert (queued.status, queued.url) == (AudioStatus.QUEUEING, None)


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (AudioStatus.QUEUEING, False),
        (AudioStatus.PROCESSING, False),
        (AudioStatus.COMPLETED, True),
        (AudioStatus.FAILED, True),
    ],
)
def test_is_final(status: AudioStatus, final: bool) -> None:
    assert status.is_final is final


def test_voice_list_skips_broken_entries() -> None:
    data = [
        {"voice_id": "v1", "from": 3, "name": "Nicole", "gender": "Female", "accent": "american"},
        {"voice_id": "", "from": 3},
        {"from": 4},
        "not a dict",
        {"voice_id": "v9", "from": 7},
        {"voice_id": "v2", "from": "4", "preview": "https://p/v2.mp3", "language": "en"},
    ]
    voices = parse_voices(data)
    assert [(v.voice_id, v.source) for v in voices] == [("v1", 3), ("v2", 4)]
    assert voices[0].name == "Nicole" and voices[0].description is None
    assert voices[1].raw["language"] == "en"
    with pytest.raises(errors.BadResponse, match="list of voices"):
        parse_voices({"list": data})
