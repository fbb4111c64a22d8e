"""The web service's edges, through Flask's test client against a real Redis: the Host names it
answers to (WEB_ALLOWED_HOSTS, against DNS rebinding), same-origin writes with API_AUTH=off, the
proxies whose X-Forwarded-* it believes (WEB_TRUSTED_PROXIES), the throttle of failed token
attempts (AUTH_FAILURE_LIMIT) and ``nosniff`` on every answer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from worker.web import edges, session
from worker.web.app import create_app

TOKEN = "first-token-0123456789"
WRONG = "wrong-token-0123456789"
KEYS: dict[str, Any] = {
    "akool_api_key": "k" * 20,
    "akool_client_id": "client-id-0123456789",
    "akool_client_secret": "s" * 32,
}


def app_with(redis_url: str, tmp: Path, **kw: Any) -> Flask:
    kw.setdefault("api_tokens", (TOKEN,))
    return create_app(Settings(redis_url=redis_url, audio_dir=tmp / "audio", **kw))


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- Host (DNS rebinding) -------------------------------------------------------------------


@pytest.mark.parametrize("auth", [True, False])
def test_a_foreign_host_is_refused_on_every_path_naming_the_setting(
    redis_url: str, tmp_path: Path, auth: bool
) -> None:
    client = app_with(redis_url, tmp_path, api_auth=auth).test_client()
    for method, path in (("GET", "/healthz"), ("GET", "/v1/jobs"), ("GET", "/metrics")):
        got = client.open(path, method=method, headers={"Host": "rebind.attacker.test", **bearer()})
        assert got.status_code == 421, path
        message = got.get_json()["error"]["message"]
        assert "WEB_ALLOWED_HOSTS" in message and "attacker" not in message
    assert client.get("/no-such-page", headers={"Host": "attacker.test"}).status_code == 421


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"]
)
def test_loopback_names_are_always_served(redis_url: str, tmp_path: Path, host: str) -> None:
    client = app_with(redis_url, tmp_path).test_client()
    assert client.get("/healthz", headers={"Host": host}).status_code == 200


def test_web_host_public_base_url_and_the_setting_add_names(redis_url: str, tmp_path: Path) -> None:
    app = app_with(
        redis_url,
        tmp_path,
        web_host="10.1.2.3",
        public_base_url="https://audio.example.com/base",
        web_allowed_hosts=("web", "api.example.com"),
        **KEYS,
    )
    client = app.test_client()
    for host in ("10.1.2.3:8000", "audio.example.com", "web:8000", "API.example.com"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host
    for host in ("example.com", "x.web", "0.0.0.0:8000", "web.attacker.test"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 421, host


def test_a_wildcard_bind_address_is_not_a_name_and_star_turns_the_check_off(
    redis_url: str, tmp_path: Path
) -> None:
    wild = app_with(redis_url, tmp_path, web_host="0.0.0.0").test_client()
    assert wild.get("/healthz", headers={"Host": "0.0.0.0:8000"}).status_code == 421
    star = app_with(redis_url, tmp_path, web_allowed_hosts=("*",)).test_client()
    assert star.get("/healthz", headers={"Host": "anything.test"}).status_code == 200


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost:8000", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("Web.Example.COM.", "web.example.com"),
        ("a b", None),
        ("", None),
        ("host:port:x", None),
        ("[::1", None),
    ],
)
def test_host_names_are_parsed_strictly(host: str, name: str | None) -> None:
    assert edges.host_name(host) == name


# -- same origin with API_AUTH=off -----------------------------------------------------------

CROSS = [
    {"Origin": "https://attacker.test"},
    {"Origin": "null"},
    {"Origin": "http://localhost:9999"},
    {"Origin": "http://localhost.attacker.test"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "https://attacker.test", "Sec-Fetch-Site": "same-origin"},
]
SAME = [
    {},  # curl, a backend: no browser header at all
    {"Origin": "http://localhost"},
    {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "same-origin"},
    {"Sec-Fetch-Site": "none"},  # typed in the address bar, a bookmark
]


@pytest.mark.parametrize("headers", CROSS)
def test_without_auth_a_cross_site_write_is_refused(
    redis_url: str, tmp_path: Path, headers: dict[str, str]
) -> None:
    client = app_with(redis_url, tmp_path, api_auth=False).test_client()
    for method, path in (("POST", "/v1/jobs/some-job/retry"), ("DELETE", "/v1/schedules/x")):
        got = client.open(path, method=method, headers=headers)
        assert got.status_code == 403, (path, headers)
        assert "same-origin" in got.get_json()["error"]["message"]
    # Reading stays open (the Host check guards reads against rebinding).
    assert client.get("/v1/jobs", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", SAME)
def test_without_auth_a_same_origin_or_non_browser_write_passes(
    redis_url: str, tmp_path: Path, headers: dict[str, str]
) -> None:
    client = app_with(redis_url, tmp_path, api_auth=False).test_client()
    got = client.post("/v1/jobs/some-job/retry", headers=headers)
    assert got.status_code == 404  # past the check: there is no such job


def test_the_origin_is_compared_with_the_host_and_its_default_port(
    redis_url: str, tmp_path: Path
) -> None:
    client = app_with(redis_url, tmp_path, api_auth=False).test_client()
    got = client.post(
        "/v1/jobs/some-job/retry",
        headers={"Host": "localhost:8000", "Origin": "http://localhost:8000"},
    )
    assert got.status_code == 404
    got = client.post(
        "/v1/jobs/some-job/retry",
        headers={"Host": "localhost:8000", "Origin": "http://localhost"},
    )
    assert got.status_code == 403


def test_with_auth_on_a_bearer_write_from_anywhere_is_the_tokens_business(
    redis_url: str, tmp_path: Path
) -> None:
    client = app_with(redis_url, tmp_path).test_client()
    got = client.post(
        "/v1/jobs/some-job/retry", headers={"Origin": "https://app.example.com", **bearer()}
    )
    assert got.status_code == 404


# -- nosniff ---------------------------------------------------------------------------------


def test_every_answer_says_nosniff(redis_url: str, tmp_path: Path) -> None:
    client = app_with(redis_url, tmp_path).test_client()
    answers = [
        client.get("/healthz"),
        client.get("/no-such-page"),
        client.get("/v1/jobs"),
        client.get("/v1/jobs", headers=bearer()),
        client.get("/login"),
        client.get("/healthz", headers={"Host": "attacker.test"}),
    ]
    for got in answers:
        assert got.headers.get("X-Content-Type-Options") == "nosniff", got.status


# -- throttle of failed tokens ---------------------------------------------------------------


def throttled(redis_url: str, tmp_path: Path, limit: int = 3, **kw: Any) -> Flask:
    return app_with(redis_url, tmp_path, auth_failure_limit=limit, **kw)


def test_failed_tokens_are_throttled_per_address_also_a_right_one_after(
    redis_url: str, tmp_path: Path
) -> None:
    client = throttled(redis_url, tmp_path).test_client()
    for _ in range(3):
        assert client.get("/v1/jobs", headers=bearer(WRONG)).status_code == 401
    refused = client.get("/v1/jobs", headers=bearer(WRONG))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "AUTH_FAILURE_LIMIT" not in refused.get_json()["error"]["message"]  # for the caller
    # The guesser cannot tell a right guess while throttled.
    assert client.get("/v1/jobs", headers=bearer()).status_code == 429
    other = {"REMOTE_ADDR": "10.9.8.7"}
    assert client.get("/v1/jobs", headers=bearer(), environ_base=other).status_code == 200
    assert client.get("/v1/jobs", headers=bearer(WRONG), environ_base=other).status_code == 401


def test_the_throttle_is_shared_by_every_web_process(redis_url: str, tmp_path: Path) -> None:
    first = throttled(redis_url, tmp_path).test_client()
    second = throttled(redis_url, tmp_path).test_client()
    for client in (first, second, first):
        assert client.get("/metrics", headers=bearer(WRONG)).status_code == 401
    assert second.get("/metrics", headers=bearer(WRONG)).status_code == 429


def test_requests_without_a_token_and_right_tokens_count_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    client = throttled(redis_url, tmp_path).test_client()
    for _ in range(10):
        assert client.get("/v1/jobs").status_code == 401
        assert client.get("/v1/jobs", headers=bearer()).status_code == 200
    assert client.get("/v1/jobs", headers=bearer(WRONG)).status_code == 401


def test_zero_turns_the_throttle_off(redis_url: str, tmp_path: Path) -> None:
    client = throttled(redis_url, tmp_path, limit=0).test_client()
    for _ in range(12):
        assert client.get("/v1/jobs", headers=bearer(WRONG)).status_code == 401


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def log_in(client: FlaskClient, token: str, **kw: Any) -> Any:
    login = client.get("/login", **kw)
    data = {"csrf_token": form_csrf(login.get_data(as_text=True)), "token": token}
    return client.post("/login", data=data, **kw)


def test_the_login_form_is_throttled_with_the_api(redis_url: str, tmp_path: Path) -> None:
    client = throttled(redis_url, tmp_path).test_client()
    assert log_in(client, WRONG).status_code == 401
    assert client.get("/v1/jobs", headers=bearer(WRONG)).status_code == 401
    assert log_in(client, WRONG).status_code == 401
    refused = log_in(client, TOKEN)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert not any(session.COOKIE in c for c in refused.headers.getlist("Set-Cookie"))
    assert client.get("/v1/jobs", headers=bearer()).status_code == 429


# -- trusted proxies -------------------------------------------------------------------------

PROXY = {"REMOTE_ADDR": "10.0.0.2"}


def session_cookie(got: Any) -> str:
    return next(c for c in got.headers.getlist("Set-Cookie") if c.startswith(session.COOKIE))


def test_a_trusted_proxy_tells_the_scheme_for_the_secure_cookie(
    redis_url: str, tmp_path: Path
) -> None:
    https = {"X-Forwarded-Proto": "https"}
    trusting = app_with(redis_url, tmp_path, web_trusted_proxies=("10.0.0.0/24",))
    got = log_in(trusting.test_client(), TOKEN, headers=https, environ_base=PROXY)
    assert got.status_code == 303 and "Secure" in session_cookie(got)
    # The same header from an address that is not a trusted proxy changes nothing.
    got = log_in(
        trusting.test_client(), TOKEN, headers=https, environ_base={"REMOTE_ADDR": "10.0.1.2"}
    )
    assert got.status_code == 303 and "Secure" not in session_cookie(got)
    plain = app_with(redis_url, tmp_path)
    got = log_in(plain.test_client(), TOKEN, headers=https, environ_base=PROXY)
    assert got.status_code == 303 and "Secure" not in session_cookie(got)


def test_a_trusted_proxy_tells_the_client_address_for_the_throttle(
    redis_url: str, tmp_path: Path
) -> None:
    client = throttled(redis_url, tmp_path, web_trusted_proxies=("10.0.0.2",)).test_client()

    def attempt(forwarded: str, remote: str = "10.0.0.2") -> int:
        headers = {"X-Forwarded-For": forwarded, **bearer(WRONG)}
        return client.get(
            "/v1/jobs", headers=headers, environ_base={"REMOTE_ADDR": remote}
        ).status_code

    for _ in range(3):
        assert attempt("198.51.100.7") == 401
    assert attempt("198.51.100.7") == 429
    assert attempt("203.0.113.9") == 401  # another client behind the same proxy
    # A client cannot pick its address by sending the header itself: the proxy appends the
    # address it saw, and only the rightmost address not a trusted proxy is believed.
    assert attempt("203.0.113.9, 198.51.100.7") == 429
    # Nor can it send the header straight to the service.
    for _ in range(3):
        attempt("192.0.2.1", remote="192.0.2.50")
    assert attempt("192.0.2.99", remote="192.0.2.50") == 429


@pytest.mark.parametrize(
    ("forwarded", "remote", "trusted", "client"),
    [
        ("198.51.100.7", "10.0.0.2", ("10.0.0.2",), "198.51.100.7"),
        ("1.1.1.1, 198.51.100.7", "10.0.0.2", ("10.0.0.2",), "198.51.100.7"),
        ("198.51.100.7, 10.0.0.3", "10.0.0.2", ("10.0.0.0/24",), "198.51.100.7"),
        ("10.0.0.3, 10.0.0.4", "10.0.0.2", ("10.0.0.0/24",), "10.0.0.3"),
        ("198.51.100.7", "10.0.0.9", ("10.0.0.2",), "10.0.0.9"),
        ("not-an-address", "10.0.0.2", ("10.0.0.2",), "10.0.0.2"),
        ("", "10.0.0.2", ("10.0.0.2",), "10.0.0.2"),
        ("2001:db8::1", "::1", ("::1",), "2001:db8::1"),
    ],
)
def test_the_client_address_is_the_rightmost_untrusted_one(
    forwarded: str, remote: str, trusted: tuple[str, ...], client: str
) -> None:
    proxies = edges.TrustedProxies.parse(trusted)
    assert proxies.client_address(remote, forwarded) == client
