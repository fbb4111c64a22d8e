"""The web service's token check and its refusal to start without tokens, through Flask's test
client. Every protected route is found in the app's own URL map, so a route another module adds
under /v1 or /metrics is checked here without anyone listing it."""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any

import pytest
from flask import Flask

from config.settings import Settings, SettingsError
from worker.web import bearer
from worker.web.app import create_app

TOKEN, OTHER = "first-token-0123456789", "second-token-0123456789"
# Nothing listens on port 1: a view that reached Redis would answer 503, not 401.
S = Settings(redis_url="redis://127.0.0.1:1/0", api_tokens=(TOKEN, OTHER))


@pytest.fixture()
def app() -> Flask:
    return create_app(S)


def protected_routes(app: Flask) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if not bearer.is_protected(rule.rule):
            continue
        path = re.sub(r"<[^>]+>", "some-id", rule.rule)
        out += [(m, path) for m in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return out


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"Bearer {OTHER}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer  {TOKEN} ", True),
        (None, False),
        ("", False),
        ("Bearer", False),
        ("Bearer ", False),
        (TOKEN, False),
        (f"Basic {TOKEN}", False),
        (f"Token {TOKEN}", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN},{OTHER}", False),
        ("Bearer ünïcode-token-0123456789", False),
    ],
)
def test_token_ok(header: str | None, ok: bool) -> None:
    assert bearer.token_ok(header, (TOKEN, OTHER)) is ok


def test_no_configured_token_accepts_nothing() -> None:
    assert bearer.token_ok("Bearer ", ()) is False
    assert bearer.token_ok(f"Bearer {TOKEN}", ()) is False


@pytest.mark.parametrize("given", [TOKEN, OTHER, "wrong-token-0123456789"])
def test_every_token_is_compared_whichever_matches(
    given: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    bearer.token_ok(f"Bearer {given}", (TOKEN, OTHER, "third-token-0123456789"))
    assert len(calls) == 3  # no early exit on a match


@pytest.mark.parametrize(
    ("path", "protected"),
    [
        ("/v1", True),
        ("/v1/jobs", True),
        ("/v1/jobs/x/cancel", True),
        ("/v1/stats", True),
        ("/v1/schedules/x", True),
        ("/metrics", True),
        ("/metrics/x", True),
        ("/healthz", False),
        ("/akool/webhook", False),
        ("/", False),
        ("/v10", False),
        ("/metricsx", False),
    ],
)
def test_which_paths_need_a_token(path: str, protected: bool) -> None:
    assert bearer.is_protected(path) is protected


def test_without_tokens_the_service_refuses_to_start_and_says_how_to_fix_it() -> None:
    with pytest.raises(SettingsError) as caught:
        create_app(Settings(redis_url=S.redis_url))
    message = str(caught.value)
    for name in ("API_TOKENS", "API_TOKENS_FILE", "API_AUTH=off"):
        assert name in message


def test_api_auth_off_asks_no_token() -> None:
    app = create_app(Settings(redis_url=S.redis_url, api_auth=False))
    assert app.test_client().get("/v1/openapi.json").status_code == 200


def test_every_protected_route_answers_401_without_a_valid_token(app: Flask) -> None:
    routes = protected_routes(app)
    paths = {p for _, p in routes}
    assert {"/v1/jobs", "/v1/jobs/some-id", "/v1/voices", "/v1/openapi.json"} <= paths
    client = app.test_client()
    bad: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
    ]
    for method, path in routes:
        for headers in bad:
            got = client.open(path, method=method, headers=headers)
            assert got.status_code == 401, (method, path, headers)
            assert got.headers["WWW-Authenticate"] == "Bearer"
            body: Any = got.get_json()
            assert body["error"]["message"].startswith("a valid API token is required")
            assert TOKEN not in got.get_data(as_text=True)


def test_open_routes_need_no_token_and_a_token_opens_the_api(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/healthz").status_code == 503  # open; Redis is not there
    assert client.post("/akool/webhook", data=b"{}").status_code == 503  # open; no client id
    ok = client.get("/v1/openapi.json", headers={"Authorization": f"Bearer {OTHER}"})
    assert ok.status_code == 200 and ok.get_json()["openapi"] == "3.1.0"


def test_the_token_and_the_query_never_reach_the_log(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = app.test_client()
    client.get("/v1/openapi.json?secret=query-value", headers={"Authorization": f"Bearer {TOKEN}"})
    client.get("/v1/jobs?q=x", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert "GET /v1/openapi.json 200" in caplog.text
    assert "GET /v1/jobs 401" in caplog.text
    for secret in (TOKEN, "wrong-token-0123456789", "query-value", "q=x"):
        assert secret not in caplog.text


def test_a_path_cannot_forge_a_log_line(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app.test_client().get("/x%0d%0aINFO forged line")
    assert "\n" not in caplog.records[-1].getMessage()
    assert "/x%0D%0AINFO%20forged%20line 404" in caplog.text


def test_a_service_told_to_expect_callbacks_needs_the_keys_to_check_them() -> None:
    with pytest.raises(SettingsError, match="AKOOL_CLIENT_ID"):
        create_app(
            Settings(redis_url=S.redis_url, api_tokens=(TOKEN,), public_base_url="https://x.test")
        )
    with pytest.raises(SettingsError, match="AKOOL_CLIENT_ID"):
        create_app(S, require_webhook=True)
