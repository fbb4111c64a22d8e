"""The dashboard in a real Chromium, against the real service (the Procfile's gunicorn), a real
Celery worker, a real Redis and the sandbox: log in, watch jobs appear and finish without a
reload, filter and search, open a job and play its audio, cancel a running job, retry a failed
one, read the fleet, log out and be refused; text from jobs renders as text.

The tests of a module share one stack and run in order (the last one screenshots the list the
others filled). The flows save a screenshot of each page (``shots`` in conftest.py)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from playwright.sync_api import Dialog, Page, expect

from sandbox import DEFAULT_CLIENT_ID, VOICES, SandboxServer
from tests.browser.conftest import PHONE
from tests.support.procs import ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import BIN
from tests.support.wait import until
from tests.support.webclient import WebClient
from worker.devstack.localredis import free_port

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
TOKEN = "dashboard-token-0123456789"
FLOWER = "http://127.0.0.1:5555/flower"
NO_JOB = "no-such-job"
LONG = 60_000  # ms: how long a page may take to show what a worker does (a loaded machine)


@dataclass(frozen=True)
class Stack:
    base: str
    api: WebClient
    sandbox: SandboxServer
    redis: RedisServer


@pytest.fixture(scope="module")
def redis_server(private_redis: RedisServer) -> RedisServer:
    return private_redis


@pytest.fixture(scope="module")
def stack(
    redis_server: RedisServer,
    make_module_sandbox: Callable[..., SandboxServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboard")
    sb = make_module_sandbox()
    port = free_port()
    env = worker_env(
        redis_server.url,
        sb.url,
        tmp / "audio",
        {
            "AKOOL_CLIENT_ID": DEFAULT_CLIENT_ID,
            "API_TOKENS": TOKEN,
            "WEB_HOST": "127.0.0.1",
            "WEB_PORT": str(port),
            "FLOWER_URL": FLOWER,
            "NOTIFY_MAX_ATTEMPTS": "1",
        },
        allow=("127.0.0.1:9",),  # the hostile notify_url and voice_url below (discard port)
    )
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    worker = CeleryWorker(env, tmp / "worker.log").start()
    web = Proc([str(BIN / command[0]), *command[1:]], env, tmp / "web.log", "listening").start()
    yield Stack(f"http://127.0.0.1:{port}", WebClient(port, TOKEN), sb, redis_server)
    web.stop()
    worker.stop()


def post_job(stack: Stack, **fields: Any) -> str:
    body = {
        "kind": "create",
        "input_text": f"Hello from the dashboard test {uuid.uuid4().hex[:6]}.",
        "voice_id": VOICE,
        **fields,
    }
    got = stack.api.post("/v1/jobs", body)
    assert got.status == 202, got.raw
    return str(got.json["job_id"])


def state_of(stack: Stack, job_id: str) -> str:
    return str(stack.api.get(f"/v1/jobs/{job_id}").json["job"]["state"])


def until_state(stack: Stack, job_id: str, *states: str) -> None:
    until(lambda: state_of(stack, job_id) in states, 60, f"{job_id} to be {'/'.join(states)}")


def log_in(page: Page, stack: Stack, path: str = "/") -> None:
    page.goto(stack.base + path)
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#token", TOKEN)
    page.click("form button[type=submit]")
    expect(page).to_have_url(stack.base + path)


def row(page: Page, job_id: str) -> Any:
    return page.locator(f'#jobs tr[data-job="{job_id}"]')


def no_dialogs(page: Page) -> list[str]:
    """Every JavaScript dialog the page opens (none should), dismissed."""
    seen: list[str] = []

    def record(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return seen


def test_log_in_and_watch_jobs_appear_and_finish_without_a_reload(
    page: Page, stack: Stack, shots: Path
) -> None:
    stack.sandbox.configure(lifecycle={"mode": "duration", "base_seconds": 2, "jitter": 0.2})
    page.goto(stack.base + "/")
    expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    page.screenshot(path=shots / "login.png")
    page.fill("#token", "not-the-token-0123456789")
    page.click("form button[type=submit]")
    expect(page.locator(".note.bad")).to_contain_text("not one of this service's API tokens")
    cookies = {c["name"] for c in page.context.cookies()}
    assert "akool_audio_session" not in cookies

    page.fill("#token", TOKEN)
    page.click("form button[type=submit]")
    expect(page).to_have_url(stack.base + "/")
    session = next(c for c in page.context.cookies() if c["name"] == "akool_audio_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert TOKEN not in session["value"]
    page.evaluate("window.notReloaded = true")

    ids = [post_job(stack, job_id=f"live-{i}-{uuid.uuid4().hex[:6]}") for i in range(4)]
    for job_id in ids:
        expect(row(page, job_id)).to_be_visible(timeout=LONG)
    for job_id in ids:
        expect(row(page, job_id).locator(".state")).to_have_attribute(
            "data-state", "succeeded", timeout=LONG
        )
        expect(row(page, job_id).locator("td.num").last).to_have_text(re.compile(r"\d+\.\d s"))
    assert page.evaluate("window.notReloaded") is True  # the same document all along
    expect(page.locator('[data-count="succeeded"]')).to_have_text(re.compile(r"^\d+$"))
    assert int(page.inner_text('[data-count="succeeded"]')) >= 4
    expect(page.locator("#live")).to_contain_text("updated")


def test_filter_by_state_and_search_by_job_id_survive_the_refresh(page: Page, stack: Stack) -> None:
    stack.sandbox.configure(
        lifecycle={"mode": "duration", "base_seconds": 0.5, "jitter": 0},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 1}],
    )
    tag = uuid.uuid4().hex[:6]
    failed = post_job(stack, job_id=f"filter-{tag}-bad")
    until_state(stack, failed, "failed")
    good = [post_job(stack, job_id=f"filter-{tag}-ok{i}") for i in range(2)]
    for job_id in good:
        until_state(stack, job_id, "succeeded")
    log_in(page, stack)

    page.click('.chip[data-filter="failed"]')
    expect(page).to_have_url(re.compile(r"\?state=failed$"))
    expect(row(page, failed)).to_be_visible()
    states = page.locator("#jobs tbody .state")
    for i in range(states.count()):
        expect(states.nth(i)).to_have_attribute("data-state", "failed")
    expect(row(page, failed).locator("td.error")).to_have_text("akool_failed")

    page.click(".filters .chip >> nth=0")  # all
    page.fill("#q", f"filter-{tag}-ok")
    page.press("#q", "Enter")
    expect(page).to_have_url(re.compile(rf"\?q=filter-{tag}-ok$"))
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    # The page's own refresh asks for the same filter: the rows stay those two.
    with page.expect_response(lambda r: "/v1/jobs?" in r.url and f"q=filter-{tag}-ok" in r.url):
        pass
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    for job_id in good:
        expect(row(page, job_id)).to_be_visible()

    page.goto(stack.base + f"/?q=filter-{tag}&state=succeeded")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    expect(page.locator("#q")).to_have_value(f"filter-{tag}")


def test_a_job_page_shows_the_timeline_and_plays_the_audio(
    page: Page, stack: Stack, shots: Path
) -> None:
    stack.sandbox.configure(lifecycle={"mode": "polls", "polls": 3}, faults=[])
    long_text = "This sentence is here so that the text is long enough to be shortened. " * 6
    job_id = post_job(stack, job_id=f"listen-{uuid.uuid4().hex[:6]}", input_text=long_text)
    until_state(stack, job_id, "succeeded")
    log_in(page, stack)
    page.click(f'#jobs a:text-is("{job_id}")')
    expect(page).to_have_url(f"{stack.base}/jobs/{job_id}")
    expect(page.locator("#job-state .state")).to_have_attribute("data-state", "succeeded")

    timeline = page.locator("#timeline")
    for title in (
        "Accepted",
        "Submitted to Akool",
        "Poll #1",
        "Poll #2",
        "Detected: Akool finished",
        "Downloaded",
        "Stored",
        "Succeeded",
    ):
        expect(timeline).to_contain_text(title)
    expect(timeline).to_contain_text(re.compile(r"planned \d\d:\d\d:\d\d, ran \d+\.\d\d s"))

    preview = page.locator("#text-preview")
    expect(preview).to_contain_text("…")
    expect(page.locator("#text-full")).to_be_hidden()
    page.click("#text-details summary")
    expect(page.locator("#text-full")).to_be_visible()
    assert page.inner_text("#text-full").strip() == long_text.strip()

    player = page.locator("audio#player")
    src = player.get_attribute("src")
    assert src == f"/jobs/{job_id}/audio"
    got = page.request.get(stack.base + src)
    assert got.status == 200 and got.headers["content-type"] == "audio/wav"
    assert got.body()[:4] == b"RIFF"
    page.wait_for_function(
        "() => { const a = document.getElementById('player');"
        " return a.readyState >= 1 && a.duration > 0 }"
    )
    duration = page.evaluate("document.getElementById('player').duration")
    assert duration > 0
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0")
    page.evaluate("document.getElementById('player').pause()")
    page.screenshot(path=shots / "job.png", full_page=True)

    # Only a job's own recorded file is served, and only for a job id.
    assert page.request.get(f"{stack.base}/jobs/..%2f..%2fetc%2fpasswd/audio").status in (
        400,
        404,
    )
    assert page.request.get(f"{stack.base}/jobs/no-such-job/audio").status == 404


def test_cancel_a_running_job_after_confirming(page: Page, stack: Stack) -> None:
    stack.sandbox.configure(lifecycle={"mode": "duration", "base_seconds": 600, "jitter": 0})
    job_id = post_job(stack, job_id=f"cancel-{uuid.uuid4().hex[:6]}")
    log_in(page, stack, f"/jobs/{job_id}")
    badge = page.locator("#job-state .state")
    # The page follows the job by itself while it runs.
    expect(badge).to_have_attribute("data-state", "submitted", timeout=LONG)
    page.evaluate("window.notReloaded = true")

    page.click("#cancel")
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("may still finish there and be charged")
    dialog.locator("button[value=no]").click()
    expect(dialog).to_be_hidden()
    assert page.evaluate("window.notReloaded") is True
    assert state_of(stack, job_id) == "submitted"  # kept running

    page.click("#cancel")
    dialog.locator("#confirm-yes").click()
    expect(page).to_have_url(f"{stack.base}/jobs/{job_id}?done=cancel")
    expect(page.locator("#note")).to_contain_text("Cancel asked")
    expect(badge).to_have_attribute("data-state", "cancelled", timeout=LONG)
    expect(page.locator("#timeline")).to_contain_text("Cancel asked")
    expect(page.locator("#cancel")).to_have_count(0)
    assert state_of(stack, job_id) == "cancelled"


def test_retry_a_failed_job(page: Page, stack: Stack) -> None:
    stack.sandbox.configure(
        lifecycle={"mode": "duration", "base_seconds": 1, "jitter": 0},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 1}],
    )
    job_id = post_job(stack, job_id=f"retry-{uuid.uuid4().hex[:6]}")
    until_state(stack, job_id, "failed")
    log_in(page, stack, f"/jobs/{job_id}")
    expect(page.locator("#job-error")).to_contain_text("akool_failed")

    page.click("#retry")
    page.locator("#confirm-yes").click()
    expect(page).to_have_url(f"{stack.base}/jobs/{job_id}?done=retry")
    expect(page.locator("#note")).to_contain_text("attempt 2")
    expect(page.locator("#job-state .state")).to_have_attribute(
        "data-state", "succeeded", timeout=LONG
    )
    expect(page.locator("#h-attempts")).to_be_visible()
    expect(page.locator("table.plain")).to_contain_text("akool_failed")
    expect(page.locator("#timeline")).to_contain_text("Retried")
    expect(page.locator("audio#player")).to_have_count(1)


def test_a_stale_tab_cannot_retry_an_attempt_another_tab_retried(page: Page, stack: Stack) -> None:
    # Given two tabs on one failed job, both offering "again as attempt 2"
    stack.sandbox.configure(
        lifecycle={"mode": "duration", "base_seconds": 1, "jitter": 0},
        faults=[{"endpoint": "create", "kind": "status_4", "times": 2}],
    )
    job_id = post_job(stack, job_id=f"stale-{uuid.uuid4().hex[:6]}")
    until_state(stack, job_id, "failed")
    log_in(page, stack, f"/jobs/{job_id}")
    tab_b = page.context.new_page()
    tab_b.goto(f"{stack.base}/jobs/{job_id}")
    expect(tab_b.locator("#retry")).to_be_visible()

    # When tab A retries, and attempt 2 fails too
    page.click("#retry")
    page.locator("#confirm-yes").click()
    expect(page).to_have_url(f"{stack.base}/jobs/{job_id}?done=retry")
    until(
        lambda: (
            stack.api.get(f"/v1/jobs/{job_id}").json["job"]["attempt"] == 2
            and state_of(stack, job_id) == "failed"
        ),
        60,
        "attempt 2 to fail",
    )

    # Then tab B, still saying "again as attempt 2", is refused when it confirms
    tab_b.click("#retry")
    expect(tab_b.locator("#confirm-text")).to_contain_text("attempt 2")
    tab_b.locator("#confirm-yes").click()
    expect(tab_b.locator("#note")).to_contain_text("attempt 2")
    expect(tab_b.locator("#note")).to_contain_text("Not done")
    job = stack.api.get(f"/v1/jobs/{job_id}").json["job"]
    assert job["attempt"] == 2 and job["state"] == "failed"  # no attempt 3, nothing sent
    tab_b.close()


def test_text_from_jobs_renders_as_text(page: Page, stack: Stack) -> None:
    stack.sandbox.configure(
        lifecycle={"mode": "immediate"},
        faults=[
            {
                "endpoint": "create",
                "kind": "code",
                "code": 1003,
                "msg": "<script>window.pwned = 'msg'</script><img src=x onerror=\"alert('msg')\">",
                "times": 1,
            }
        ],
    )
    seen = no_dialogs(page)
    text = "<script>alert('text')</script><img src=x onerror=alert('text')> spoken"
    # URLs take RFC 3986's characters only ('<' is refused at intake): quotes, parentheses,
    # '=' and '&' are what could still break out of an attribute.
    notify = "http://127.0.0.1:9/x'onmouseover='alert(1)'&y=1"
    voice_url = "http://127.0.0.1:9/'onerror='alert(%22voice%22)'&src=x.wav"
    tag = uuid.uuid4().hex[:6]
    failed = post_job(stack, job_id=f"xss-{tag}", input_text=text, notify_url=notify)
    clone = post_job(
        stack, job_id=f"xss-{tag}-clone", kind="clone", voice_url=voice_url, voice_id=None
    )
    until_state(stack, failed, "failed")
    log_in(page, stack, f"/jobs/{failed}")
    expect(page.locator("#text-full")).to_have_text(text)
    expect(page.locator("#h-request").locator("..")).to_contain_text(notify)
    error = page.locator("#job-error")
    expect(error).to_contain_text("1003")
    expect(error).to_contain_text("Akool's code")
    expect(error).to_contain_text("<script>window.pwned = 'msg'</script>")
    expect(page.locator("#timeline")).to_contain_text("onerror=")

    page.goto(f"{stack.base}/?q=xss-{tag}")
    expect(row(page, clone).locator("td.voice")).to_have_text(voice_url)
    # The rows the script draws from /v1/jobs: the same literal text.
    with page.expect_response(lambda r: "/v1/jobs?" in r.url):
        pass
    expect(row(page, clone).locator("td.voice")).to_have_text(voice_url)
    assert page.locator("#jobs img").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"
    assert seen == []


def test_the_fleet_page(page: Page, stack: Stack, caller: Celery, shots: Path) -> None:
    stack.sandbox.configure(lifecycle={"mode": "immediate"}, faults=[])
    done = post_job(stack, job_id=f"fleet-{uuid.uuid4().hex[:6]}")
    until_state(stack, done, "succeeded")
    # An audio task sent without queue="audio": it waits in 'celery', which nobody consumes.
    caller.send_task(
        "audio.create", kwargs={"input_text": "Lost.", "voice_id": VOICE, "job_id": "lost"}
    )
    log_in(page, stack, "/fleet")
    # Workers are asked with a 1 s timeout (and the answer kept 10 s): a busy machine may
    # need another look, which the page takes by itself every 10 s.
    expect(page.locator("#workers")).to_contain_text("w1@", timeout=LONG)
    expect(page.locator("#queues")).to_contain_text("audio")
    expect(page.locator(".note.warn")).to_contain_text(
        "queue 'celery', which no live worker", timeout=LONG
    )
    expect(page.locator("#h-limiter").locator("..")).to_contain_text("requests/s")
    expect(page.locator("#h-akool").locator("..")).to_contain_text("calls")
    flower = page.locator("nav a.external")
    expect(flower).to_have_attribute("href", FLOWER)
    # The workers write their counters every few seconds; the page refreshes itself.
    expect(page.locator("#throughput-summary")).to_contain_text(
        re.compile(r"[1-9]\d* succeeded"), timeout=LONG
    )
    expect(page.locator("#throughput rect.bar.s-succeeded").first).to_be_visible()
    page.screenshot(path=shots / "fleet.png", full_page=True)
    stack.redis.client().delete("celery")  # the lost message, so no later page warns of it


def test_log_out_and_be_refused(page: Page, stack: Stack, shots: Path) -> None:
    log_in(page, stack)
    # By now the list holds every kind of ending the flows above made: its screenshots.
    expect(page.locator("#live")).to_contain_text("updated")
    page.screenshot(path=shots / "jobs.png", full_page=True)
    page.set_viewport_size(PHONE)
    page.screenshot(path=shots / "jobs-phone.png", full_page=True)
    old = [c for c in page.context.cookies() if c["name"] == "akool_audio_session"]
    assert old
    page.click("form.logout button")
    expect(page).to_have_url(re.compile(r"/login\?bye=1$"))
    expect(page.locator(".note.ok")).to_contain_text("logged out")
    page.goto(stack.base + "/fleet")
    expect(page).to_have_url(re.compile(r"/login\?next=/fleet$"))
    # The old cookie, put back, opens nothing: the session was ended on the server.
    page.context.add_cookies(old)
    page.goto(stack.base + "/")
    expect(page).to_have_url(re.compile(r"/login"))
    assert page.request.get(stack.base + "/v1/jobs").status == 401
    assert page.request.get(stack.base + "/counts").status == 401
    refused = page.request.post(stack.base + f"/jobs/{NO_JOB}/cancel", max_redirects=0)
    assert refused.status == 303 and "/login" in refused.headers["location"]
