"""Every error of the web service is JSON in one shape, and says nothing it should not: an
unexpected exception is a bare 500 (its text only in the log), a lost Redis a 503. The webhook
keeps its own answers (``{"status", "message"}``)."""

from __future__ import annotations

import logging

import pytest
import redis
from flask import Flask

from config.settings import Settings
from worker.web.app import create_app
from worker.web.jsonerrors import ErrorCode

TOKEN = "errors-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
S = Settings(
    redis_url="redis://127.0.0.1:1/0",
    api_tokens=(TOKEN,),
    akool_client_id="cid",
    akool_api_key="k" * 32,
)


@pytest.fixture()
def app() -> Flask:
    app = create_app(S)

    def boom() -> str:
        raise RuntimeError("secret detail of the failure")

    def lost() -> str:
        raise redis.ConnectionError("Error 111 connecting to 10.0.0.9:6379")

    app.add_url_rule("/v1/boom", "boom", boom)
    app.add_url_rule("/v1/lost", "lost", lost)
    return app


def test_an_unexpected_error_is_a_bare_500_with_the_detail_only_in_the_log(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    app.testing = False  # as served: the error handler answers instead of re-raising
    got = app.test_client().get("/v1/boom", headers=AUTH)
    assert got.status_code == 500
    assert got.get_json() == {"error": {"code": "internal", "message": "internal error"}}
    assert "secret detail" in caplog.text


def test_a_lost_redis_is_503(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    got = app.test_client().get("/v1/lost", headers=AUTH)
    assert got.status_code == 503
    assert got.get_json() == {
        "error": {"code": "unavailable", "message": "cannot reach Redis; try again"}
    }
    assert "10.0.0.9" not in got.get_data(as_text=True)


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nowhere", 404, None),
        ("GET", "/v1/nowhere", 404, None),
        ("DELETE", "/v1/jobs", 405, "GET, HEAD, OPTIONS, POST"),
        ("POST", "/healthz", 405, "GET, HEAD, OPTIONS"),
        ("GET", "/v1/jobs/x/cancel", 405, "POST"),
    ],
)
def test_routing_errors_are_json(
    app: Flask, method: str, path: str, status: int, allow: str | None
) -> None:
    got = app.test_client().open(path, method=method, headers=AUTH)
    assert got.status_code == status
    assert set(got.get_json()) == {"error"} and got.get_json()["error"]["message"]
    assert ErrorCode(got.get_json()["error"]["code"]).status == status
    assert got.headers.get("Allow") == allow


def test_a_body_over_64_kb_is_413_and_never_read(app: Flask) -> None:
    big = b'{"input_text": "' + b"x" * 70_000 + b'"}'
    got = app.test_client().post(
        "/v1/jobs", data=big, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert got.status_code == 413
    assert got.get_json() == {
        "error": {"code": "too_large", "message": "the body is larger than 64 KB"}
    }


def test_the_webhook_keeps_its_own_answers(app: Flask) -> None:
    client = app.test_client()
    wrong = client.get("/akool/webhook")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert wrong.get_json() == {"status": 405, "message": "use POST"}
    big = client.post("/akool/webhook", data=b"x" * 70_000)
    assert big.status_code == 413
    assert big.get_json() == {"status": 413, "message": "body too large"}
    garbled = client.post("/akool/webhook", data=b"not json")
    assert garbled.get_json() == {"status": 400, "message": "body is not JSON"}
