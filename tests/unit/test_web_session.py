"""The dashboard's login, sessions and CSRF tokens, and what its pages show, through Flask's test
client against a real Redis: a session holds no token, dies on logout and with its token, opens
the pages and the API's GETs but no POST without its CSRF token; text from jobs is escaped; the
audio route serves a job's own file only. (The flows in a browser: tests/browser.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from worker.fleet import counters
from worker.web import deps, page_fleet, page_format, pages, session
from worker.web.app import create_app

TOKEN, OTHER, THIRD = "first-token-0123456789", "second-token-0123456789", "third-token-0123456"
XSS = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def app_for(redis_url: str, tmp: Path, *tokens: str, auth: bool = True) -> Flask:
    s = Settings(redis_url=redis_url, api_tokens=tokens, api_auth=auth, audio_dir=tmp / "audio")
    return create_app(s)


@pytest.fixture()
def app(redis_url: str, tmp_path: Path) -> Flask:
    return app_for(redis_url, tmp_path, TOKEN, OTHER)


def store(app: Flask) -> Any:
    return app.extensions[deps.EXTENSION].jobs


def form_csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def log_in(client: FlaskClient, token: str = TOKEN, next_path: str = "/") -> Any:
    login = client.get(f"/login?next={next_path}")
    return client.post(
        "/login",
        data={
            "csrf_token": form_csrf(login.get_data(as_text=True)),
            "token": token,
            "next": next_path,
        },
    )


def session_csrf(client: FlaskClient) -> str:
    got = client.get("/")
    assert got.status_code == 200
    return form_csrf(got.get_data(as_text=True))


def all_redis_text(redis_url: str) -> str:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    out = []
    for key in r.scan_iter():
        out.append(key)
        if r.type(key) == "hash":
            out += [f"{k}={v}" for k, v in r.hgetall(key).items()]
        elif r.type(key) == "string":
            out.append(str(r.get(key)))
    return "\n".join(out)


def test_pages_ask_for_a_login_and_remember_where_to_go(app: Flask) -> None:
    client = app.test_client()
    for path in ("/", "/fleet", "/jobs/some-job", "/?state=failed&q=ab"):
        got = client.get(path)
        assert got.status_code == 303, path
        assert got.headers["Location"].startswith("/login?next=")
    assert client.get("/counts").status_code == 401
    assert client.get("/static/dashboard.css").status_code == 200  # the login page needs it
    got = log_in(client, next_path="/fleet")
    assert got.status_code == 303 and got.headers["Location"] == "/fleet"


def test_the_session_cookie_is_httponly_strict_and_holds_no_token(
    app: Flask, redis_url: str
) -> None:
    client = app.test_client()
    got = log_in(client)
    assert got.status_code == 303
    cookie = next(
        c for c in got.headers.getlist("Set-Cookie") if c.startswith(session.COOKIE + "=")
    )
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here
    assert TOKEN not in cookie
    assert TOKEN not in all_redis_text(redis_url)
    secure = app.test_client()
    got = log_in_over_https(secure)
    assert "Secure" in next(c for c in got.headers.getlist("Set-Cookie") if "session" in c)


def log_in_over_https(client: FlaskClient) -> Any:
    login = client.get("/login", base_url="https://localhost")
    return client.post(
        "/login",
        base_url="https://localhost",
        data={"csrf_token": form_csrf(login.get_data(as_text=True)), "token": TOKEN},
    )


@pytest.mark.parametrize(
    "token", ["", "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x", f"{TOKEN},{OTHER}"]
)
def test_a_wrong_token_opens_nothing(app: Flask, token: str) -> None:
    client = app.test_client()
    got = log_in(client, token)
    assert got.status_code == 401
    assert "not one of this service" in got.get_data(as_text=True)
    assert not any(session.COOKIE in c for c in got.headers.getlist("Set-Cookie"))
    assert client.get("/").status_code == 303


def test_the_login_form_needs_its_own_csrf_token(app: Flask) -> None:
    client = app.test_client()
    client.get("/login")
    for data in ({"token": TOKEN}, {"token": TOKEN, "csrf_token": "forged-0123456789abcdefgh"}):
        got = client.post("/login", data=data)
        assert got.status_code == 403
        assert not any(session.COOKIE in c for c in got.headers.getlist("Set-Cookie"))
    # A fresh browser (no CSRF cookie at all) cannot be logged in by another site either.
    assert app.test_client().post("/login", data={"token": TOKEN}).status_code == 403


def test_a_session_reads_the_api_but_posts_only_with_its_csrf_header(app: Flask) -> None:
    client = app.test_client()
    log_in(client)
    csrf = session_csrf(client)
    assert client.get("/v1/jobs").status_code == 200
    assert client.get("/counts").get_json()["total"] == 0
    refused = client.post("/v1/jobs/some-job/cancel")
    assert refused.status_code == 403
    assert session.CSRF_HEADER in refused.get_json()["error"]["message"]
    wrong = client.post("/v1/jobs/some-job/cancel", headers={session.CSRF_HEADER: "x" * 43})
    assert wrong.status_code == 403
    allowed = client.post("/v1/jobs/some-job/cancel", headers={session.CSRF_HEADER: csrf})
    assert allowed.status_code == 404  # past the check: there is no such job
    # Without the cookie, the header alone is nothing.
    bare = app.test_client().post("/v1/jobs/x/cancel", headers={session.CSRF_HEADER: csrf})
    assert bare.status_code == 401


def test_every_page_post_needs_the_csrf_token(app: Flask) -> None:
    client = app.test_client()
    log_in(client)
    store(app).create("post-me", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t1")
    for path in ("/jobs/post-me/cancel", "/jobs/post-me/retry", "/logout"):
        assert client.post(path).status_code == 403, path
        assert client.post(path, data={"csrf_token": "nope-0123456789abcdefg"}).status_code == 403
    csrf = session_csrf(client)
    asked = client.post("/jobs/post-me/cancel", data={"csrf_token": csrf})
    assert asked.status_code == 200  # not confirmed yet: the page asks
    assert "Yes, cancel it" in asked.get_data(as_text=True)
    assert store(app).get("post-me").state.value == "accepted"


def test_logout_ends_the_session_on_the_server(app: Flask, redis_url: str) -> None:
    client = app.test_client()
    log_in(client)
    csrf = session_csrf(client)
    sid = client.get_cookie(session.COOKIE)
    assert sid is not None
    got = client.post("/logout", data={"csrf_token": csrf})
    assert got.status_code == 303 and got.headers["Location"] == "/login?bye=1"
    assert any(c.startswith(session.COOKIE + "=;") for c in got.headers.getlist("Set-Cookie"))
    assert "websession" not in all_redis_text(redis_url)
    replay = app.test_client()
    replay.set_cookie(session.COOKIE, sid.value)
    assert replay.get("/").status_code == 303
    assert replay.get("/v1/jobs").status_code == 401


def test_removing_a_token_ends_its_sessions_and_adding_one_keeps_them(
    app: Flask, redis_url: str, tmp_path: Path
) -> None:
    client = app.test_client()
    log_in(client, OTHER)
    sid = client.get_cookie(session.COOKIE)
    assert sid is not None
    for tokens, ok in (((TOKEN, OTHER, THIRD), True), ((OTHER,), True), ((TOKEN, THIRD), False)):
        after = app_for(redis_url, tmp_path, *tokens).test_client()
        after.set_cookie(session.COOKIE, sid.value)
        assert (after.get("/").status_code == 200) is ok, tokens
        assert (after.get("/v1/jobs").status_code == 200) is ok, tokens
    # Refused once, the session is gone: the old token back does not revive it.
    again = app_for(redis_url, tmp_path, TOKEN, OTHER).test_client()
    again.set_cookie(session.COOKIE, sid.value)
    assert again.get("/").status_code == 303


def test_a_bearer_token_opens_the_pages_without_a_session(app: Flask) -> None:
    client = app.test_client()
    auth = {"Authorization": f"Bearer {OTHER}"}
    assert client.get("/", headers=auth).status_code == 200
    assert client.get("/counts", headers=auth).status_code == 200
    store(app).create("by-bearer", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t1")
    confirm = client.post("/jobs/by-bearer/cancel", headers=auth)  # no CSRF: not a browser's
    assert confirm.status_code == 200
    wrong = {"Authorization": "Bearer wrong-token-0123456789"}
    assert client.get("/", headers=wrong).status_code == 303


def test_with_api_auth_off_nobody_logs_in_and_forms_still_carry_a_token(
    redis_url: str, tmp_path: Path
) -> None:
    client = app_for(redis_url, tmp_path, auth=False).test_client()
    page = client.get("/")
    assert page.status_code == 200
    assert "no login (API_AUTH=off)" in page.get_data(as_text=True)
    assert client.get("/login").status_code == 303
    assert client.get("/v1/jobs").status_code == 200
    store_app = client.application
    store(store_app).create("open-1", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t1")
    assert client.post("/jobs/open-1/cancel").status_code == 403
    csrf = form_csrf(client.get("/jobs/open-1").get_data(as_text=True))
    assert client.post("/jobs/open-1/cancel", data={"csrf_token": csrf}).status_code == 200
    # Another browser's token (its own cookie) is not this one's.
    other = app_for(redis_url, tmp_path, auth=False).test_client()
    other.get("/")
    assert other.post("/jobs/open-1/cancel", data={"csrf_token": csrf}).status_code == 403


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/fleet", "/fleet"),
        ("/?state=failed&q=ab", "/?state=failed&q=ab"),
        ("", "/"),
        (None, "/"),
        ("//evil.test/", "/"),
        ("https://evil.test/", "/"),
        ("/\\evil.test", "/"),
        ("/\r\nSet-Cookie: x=1", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_after_login_only_a_path_of_this_service(target: str | None, safe: str) -> None:
    assert pages.safe_next(target) == safe


def test_text_from_jobs_is_escaped_everywhere(app: Flask) -> None:
    jobs = store(app)
    request = {
        "input_text": XSS * 10,
        "voice_url": f"http://127.0.0.1/{XSS}.wav",
        "notify_url": f"http://127.0.0.1/{XSS}",
        "rate": "100%",
    }
    jobs.create("xss-1", "clone", request, "t1")
    jobs.fail("xss-1", "1003", f"Akool said {XSS}")
    client = app.test_client()
    log_in(client)
    for path in ("/", "/jobs/xss-1", "/?q=xss", "/?state=failed"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html, path
    job_page = client.get("/jobs/xss-1").get_data(as_text=True)
    assert "Akool said &lt;script&gt;" in job_page
    assert "1003" in job_page


def test_pages_send_a_strict_content_security_policy(app: Flask) -> None:
    client = app.test_client()
    log_in(client)
    got = client.get("/")
    policy = got.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert got.headers["Cache-Control"] == "no-store"
    html = got.get_data(as_text=True)
    assert "<script>" not in html and " style=" not in html  # nothing inline: CSP holds
    assert re.search(r'<script src="/static/dashboard\.js\?v=\w+" defer>', html)
    js = client.get("/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.content_type


def test_the_audio_route_serves_only_the_jobs_own_file(app: Flask, tmp_path: Path) -> None:
    jobs = store(app)
    audio = tmp_path / "audio"
    audio.mkdir()
    wav = audio / "heard.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 40)
    (tmp_path / "secret.wav").write_bytes(b"RIFF secret")
    for job_id in ("heard", "elsewhere", "renamed", "pending"):
        jobs.create(job_id, "create", {"input_text": "Hi.", "voice_id": "v1"}, "t")
    jobs.succeed("heard", str(wav), str(wav), "0" * 64, 44)
    jobs.succeed("elsewhere", str(tmp_path / "secret.wav"), str(tmp_path / "secret.wav"), "0", 1)
    jobs.succeed("renamed", str(wav), str(wav), "0" * 64, 44)  # another job's file
    client = app.test_client()
    log_in(client)
    got = client.get("/jobs/heard/audio")
    assert got.status_code == 200 and got.content_type == "audio/wav"
    assert got.data == wav.read_bytes()
    ranged = client.get("/jobs/heard/audio", headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.data == b"RIFF"
    for job_id in ("elsewhere", "renamed", "pending", "missing"):
        assert client.get(f"/jobs/{job_id}/audio").status_code == 404, job_id
    assert client.get("/jobs/..%2f..%2fsecret/audio").status_code in (400, 404)
    assert client.get("/jobs/a%20b/audio").status_code == 400
    assert 'src="/jobs/heard/audio"' in client.get("/jobs/heard").get_data(as_text=True)
    assert "<audio" not in client.get("/jobs/elsewhere").get_data(as_text=True)


def test_the_jobs_page_filters_searches_and_pages(app: Flask) -> None:
    jobs = store(app)
    for i in range(pages.PAGE_SIZE + 5):
        jobs.create(f"many-{i:03d}", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t")
    jobs.fail("many-007", "akool_failed", "status 4")
    client = app.test_client()
    log_in(client)
    first = client.get("/").get_data(as_text=True)
    ids = re.findall(r'<tr data-job="([^"]+)"', first)
    assert len(ids) == pages.PAGE_SIZE and ids[0] == f"many-{pages.PAGE_SIZE + 4:03d}"
    older = re.search(r'href="(/\?cursor=[^"]+)" rel="next"', first)
    assert older
    rest = re.findall(r'<tr data-job="([^"]+)"', client.get(older.group(1)).get_data(as_text=True))
    assert len(rest) == 5 and rest[-1] == "many-000"
    failed = client.get("/?state=failed").get_data(as_text=True)
    assert re.findall(r'<tr data-job="([^"]+)"', failed) == ["many-007"]
    assert 'data-count="failed">1<' in failed
    found = client.get("/?q=many-01").get_data(as_text=True)
    assert re.findall(r'<tr data-job="([^"]+)"', found) == [f"many-01{i}" for i in range(10)]
    bad = client.get("/?q=<x>&state=nope")
    assert bad.status_code == 400 and "&lt;x&gt;" not in bad.get_data(as_text=True)


def test_the_timeline_reads_every_kind_of_event() -> None:
    events: list[dict[str, Any]] = [
        {"t": 100.0, "type": "accepted", "kind": "create"},
        {"t": 100.1, "type": "submit_started", "n": 1},
        {"t": 100.5, "type": "submitted", "akool_id": "a1", "status": 1},
        {"t": 101.2, "type": "poll", "planned": 101.0, "status": 1, "error": False},
        {"t": 102.0, "type": "poll", "planned": 102.1, "status": 2, "error": False},
        {"t": 102.0, "type": "status", "from": 1, "to": 2},
        {"t": 103.0, "type": "poll", "planned": 103.0, "status": 3},
        {"t": 103.0, "type": "status", "from": 2, "to": 3},
        {"t": 103.5, "type": "downloaded", "started": 103.1, "bytes": 2048, "sha256": "ab" * 32},
        {"t": 103.6, "type": "stored", "location": "/x/a.wav", "bytes": 2048},
        {"t": 103.6, "type": "succeeded"},
        {"t": 104.0, "type": "notified", "channel": "url", "attempt": 1, "outcome": "delivered"},
        {"t": 105.0, "type": "something_new", "x": "<b>"},
    ]
    steps = page_format.timeline(events)
    titles = [s.title for s in steps]
    assert titles == [
        "Accepted", "Submit #1 started", "Submitted to Akool", "Poll #1", "Poll #2",
        "Akool status changed", "Poll #3", "Detected: Akool finished", "Downloaded", "Stored",
        "Succeeded", "Notified", "something_new",
    ]  # fmt: skip
    assert steps[0].offset == 0 and steps[-1].offset == pytest.approx(5.0)
    assert "ran 0.20 s late" in steps[3].detail and "0.10 s early" in steps[4].detail
    assert "2.0 KB" in steps[8].detail and "in 0.4 s" in steps[8].detail
    assert steps[11].detail == "notify_url: delivered (attempt 1)"
    assert steps[-1].detail == '{"x": "<b>"}'  # the template escapes it
    assert {s.tone for s in steps} <= {"ok", "bad", "warn", "busy", "wait", "off"}


@pytest.mark.parametrize(
    ("seconds", "age", "duration"),
    [
        (None, "—", "—"),
        (0.04, "0 s", "0.0 s"),
        (59.9, "59 s", "59.9 s"),
        (61, "1 min", "1 min 01 s"),
        (3725, "1 h", "1 h 02 min"),
        (200000, "2 d", "55 h 33 min"),
    ],
)
def test_ages_and_durations_in_words(seconds: float | None, age: str, duration: str) -> None:
    assert page_format.age(seconds) == age
    assert page_format.duration(seconds) == duration


def test_a_long_text_is_shortened_at_a_word() -> None:
    short, cut = page_format.shortened("word " * 100, 50)
    assert cut and short.endswith("word…") and len(short) <= 51
    assert page_format.shortened("short", 50) == ("short", False)


def test_throughput_comes_from_the_per_minute_counters(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    now = 1_000_000 * 60 + 30.0
    minute = int(now // 60)
    r.hset(counters.bucket_key("p", minute), mapping={"jobs_done:succeeded": 4})
    r.hset(
        counters.bucket_key("p", minute - 2),
        mapping={"jobs_done:succeeded": 1, "jobs_done:failed": 1},
    )
    r.hset(counters.bucket_key("p", minute - 60), mapping={"jobs_done:succeeded": 99})  # too old
    series = page_fleet.throughput(r, "p", now)
    assert len(series) == 60 and series[-1].minute == minute
    assert series[-1].done == {"succeeded": 4, "failed": 0, "cancelled": 0}
    assert series[-3].total == 2 and sum(m.total for m in series) == 6
    chart = page_fleet.chart(series)
    assert chart.peak == 4 and chart.total == {"succeeded": 5, "failed": 1, "cancelled": 0}
    tallest = [b for b in chart.bars if b.minute == minute]
    assert len(tallest) == 1 and tallest[0].height == chart.height and tallest[0].y == 0
    pair = sorted((b for b in chart.bars if b.minute == minute - 2), key=lambda b: -b.y)
    assert [b.series for b in pair] == ["succeeded", "failed"]  # stacked bottom up
    assert pair[0].height == pair[1].height == chart.height / 4
    assert page_fleet.chart(page_fleet.throughput(r, "empty", now)).bars == []


def test_the_fleet_page_shows_the_fleet(app: Flask) -> None:
    client = app.test_client()
    log_in(client)
    html = client.get("/fleet").get_data(as_text=True)
    for text in ("Workers", "Queues", "Akool rate limiter", "Akool over the last hour"):
        assert text in html
    assert "No live worker answered" in html  # none runs here
    assert 'id="throughput"' in html and "0 jobs finished" in html
    assert "Flower" not in html  # FLOWER_URL is not set


def test_a_result_on_s3_plays_from_its_presigned_link(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    s = Settings(
        redis_url=redis_url,
        api_tokens=(TOKEN,),
        audio_store="s3://audio-results/tts",
        s3_endpoint_url="http://127.0.0.1:9",  # never reached: a presigned link is made here
        aws_region="us-east-1",
    )
    app = create_app(s)
    jobs = store(app)
    jobs.create("on-s3", "create", {"input_text": "Hi.", "voice_id": "v1"}, "t")
    jobs.succeed("on-s3", "s3://audio-results/tts/on-s3.mp3", None, "0" * 64, 10)
    client = app.test_client()
    log_in(client)
    got = client.get("/jobs/on-s3")
    src = re.search(r'<audio id="player" controls preload="metadata" src="([^"]+)"', got.text)
    assert src and src.group(1).startswith("http://127.0.0.1:9/audio-results/tts/on-s3.mp3?")
    assert "X-Amz-Signature" in src.group(1)
    assert "media-src 'self' http://127.0.0.1:9;" in got.headers["Content-Security-Policy"]
    assert client.get("/jobs/on-s3/audio").status_code == 404  # nothing local to stream
