"""The pipeline's steps called in-process, as table tests: a real Redis, the sandbox over HTTP,
no Celery worker. Each test drives ``worker.pipeline``'s steps by hand and asserts on what the step
returns (``Later`` or None) and on the job record; no test sleeps through a countdown."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from config.settings import Settings
from sandbox import DEFAULT_API_KEY, VOICES, SandboxServer
from tests.support.procs import loopback_allow
from tests.support.wait import until
from worker import pipeline as steps
from worker.akool import AudioStatus
from worker.akool.errors import RateLimited
from worker.jobs import ErrorCode, Job, JobState
from worker.pipeline.schedule import Later, error_delay, longest_countdown
from worker.services import Services, build, redis_client

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
READ_TIMEOUT = 0.3  # a "slow" fault of SLOW seconds is a read timeout
SLOW = 0.6

Make = Callable[..., Services]


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb(make_module_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_module_sandbox()


@pytest.fixture(autouse=True)
def _fresh_sandbox(sb: SandboxServer) -> None:
    sb.reset()
    sb.configure(lifecycle={"mode": "polls", "polls": 3})


@pytest.fixture()
def make(redis_url: str, sb: SandboxServer, tmp_path: Path) -> Iterator[Make]:
    """Build Services from settings as a worker would (extra env vars as keyword arguments)."""
    built: list[Services] = []

    def _make(**env: str) -> Services:
        base = {
            "REDIS_URL": redis_url,
            "AKOOL_BASE_URL": sb.url,
            "AKOOL_API_KEY": DEFAULT_API_KEY,
            "AKOOL_READ_TIMEOUT": str(READ_TIMEOUT),
            "AUDIO_DIR": str(tmp_path),
            "ALLOW_PRIVATE_HOSTS": loopback_allow(sb.url, "127.0.0.1:9"),  # :9, nobody listens
            # The shared rate limit is tested elsewhere; here it must never defer a step.
            "AKOOL_RATE_LIMIT": "1000",
            "AKOOL_RATE_BURST": "1000",
        }
        svc = build(Settings.from_env({**base, **env}))
        built.append(svc)
        return svc

    yield _make
    for svc in built:
        svc.akool.close()
        svc.http.close()


@pytest.fixture()
def svc(make: Make) -> Services:
    return make()


def new_job(svc: Services, kind: str = "create", text: str | None = None, **extra: Any) -> str:
    """Accept a job through the real ``accept`` step; returns its id."""
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    kwargs: dict[str, Any] = {
        "input_text": text or f"Hello from the step tests, {job_id}.",
        "job_id": job_id,
        **extra,
    }
    if kind == "create":
        kwargs.setdefault("voice_id", VOICE)
    got, owner = steps.accept(svc, kind, kwargs, f"task-{job_id}")
    assert (got, owner) == (job_id, True)
    return job_id


def requests_to(sb: SandboxServer, endpoint: str) -> int:
    return int(sb.stats()["requests"][endpoint])


def fault(endpoint: str, kind: str, times: int = 1, **extra: Any) -> dict[str, Any]:
    return {"endpoint": endpoint, "kind": kind, "times": times, **extra}


def submitted(svc: Services, job_id: str) -> Job:
    assert steps.submit(svc, job_id) is None
    job = svc.jobs.get(job_id)
    assert job.akool_id is not None
    return job


def backoff_range(n: int, base: float = 1.0, factor: float = 2.0) -> tuple[float, float]:
    """The +/-20 % jitter band of ``base * factor**n``."""
    mid = base * factor**n
    return 0.8 * mid - 1e-9, 1.2 * mid + 1e-9


def assert_due(svc: Services, job_id: str, later: Later, t0: float, t1: float) -> None:
    """The active index moved to ``countdown`` after the step (the sweeper's view)."""
    due = svc.jobs.due(job_id)
    assert due is not None
    assert t0 + later.countdown - 0.01 <= due <= t1 + later.countdown + 0.01


# -- submit ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "voice"),
    [("create", None), ("clone", "voice_url"), ("clone", "voice_id")],
    ids=["create", "clone-voice_url", "clone-voice_id"],
)
def test_submit_records_the_akool_job(
    svc: Services, sb: SandboxServer, kind: str, voice: str | None
) -> None:
    extra = {}
    if voice == "voice_url":
        extra = {"voice_url": f"{sb.url}/previews/{VOICE}.wav"}
    elif voice == "voice_id":
        extra = {"voice_id": VOICE}
    job_id = new_job(svc, kind, **extra)

    t0 = time.time()
    assert steps.submit(svc, job_id) is None
    t1 = time.time()

    job = svc.jobs.get(job_id)
    [akool] = sb.jobs()
    assert job.state is JobState.SUBMITTED
    assert job.akool_id == akool["_id"]
    assert job.akool_status is AudioStatus.QUEUEING
    assert (job.submit_attempts, job.ambiguous_submits, job.polls) == (1, 0, 0)
    assert job.submitted_at is not None and t0 <= job.submitted_at <= t1
    # the first poll is planned POLL_INITIAL_DELAY ahead (no learned durations yet)
    delay = svc.settings.poll_initial_delay
    assert job.due_at is not None and t0 + delay <= job.due_at <= t1 + delay
    assert svc.jobs.due(job_id) == pytest.approx(job.due_at)
    assert svc.jobs.job_for_akool_id(akool["_id"]) == job_id
    assert akool["input_text"] == job.request["input_text"]
    stats = sb.stats()
    assert stats["submissions"] == 1
    assert stats["requests"][kind] == 1
    assert stats["requests"]["detail"] == 0


@pytest.mark.parametrize(
    ("faults", "text", "state", "code", "status"),
    [
        ([], None, JobState.DOWNLOADING, None, AudioStatus.COMPLETED),
        ([fault("create", "status_4")], None, JobState.FAILED, "akool_failed", AudioStatus.FAILED),
        ([], "It will [[fail]] at once.", JobState.FAILED, "akool_failed", AudioStatus.FAILED),
    ],
    ids=["done-at-create", "status4-fault", "status4-text"],
)
def test_submit_when_akool_answers_final_at_create(
    svc: Services,
    sb: SandboxServer,
    faults: list[dict[str, Any]],
    text: str | None,
    state: JobState,
    code: str | None,
    status: AudioStatus,
) -> None:
    sb.configure(lifecycle={"mode": "immediate"}, faults=faults)
    job_id = new_job(svc, text=text)

    job = submitted(svc, job_id)

    assert job.state is state
    assert job.error_code == code
    assert job.akool_status is status
    assert job.polls == 0
    if state is JobState.DOWNLOADING:
        assert job.audio_url == sb.job(job.akool_id or "")["url"]
        assert job.detected_at is not None
    else:
        assert job.akool_id and job.akool_id in (job.error_message or "")
    # no poll was needed, and a poll now (a duplicate chain's) stops without asking Akool
    with pytest.raises(steps.Stale):
        steps.poll(svc, job_id)
    assert requests_to(sb, "detail") == 0
    assert svc.jobs.get(job_id).state is state


@pytest.mark.parametrize(
    ("kind", "code"),
    [("create", 1003), ("create", 1006), ("create", 1104), ("create", 1200), ("clone", 1003)],
)
def test_submit_fails_at_once_on_a_permanent_api_error(
    svc: Services, sb: SandboxServer, kind: str, code: int
) -> None:
    sb.configure(faults=[fault(kind, "code", times=5, code=code)])
    job_id = new_job(svc, kind, **({"voice_id": VOICE} if kind == "clone" else {}))

    assert steps.submit(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.error_code == str(code)
    assert job.error_message and "gave up" not in job.error_message
    assert (job.submit_attempts, job.ambiguous_submits, job.akool_id) == (1, 0, None)
    # a redelivered message finds a final job: nothing is sent again
    assert steps.submit(svc, job_id) is None
    assert requests_to(sb, kind) == 1
    assert sb.stats()["submissions"] == 0


RETRYABLE: list[tuple[dict[str, Any], str, bool]] = [
    ({"kind": "code", "code": 1005}, "1005", False),
    ({"kind": "code", "code": 1201}, "1201", False),
    ({"kind": "code", "code": 1015}, "1015", False),
    ({"kind": "http_500_html"}, "HTTPStatusError", True),
    ({"kind": "http_500_html", "http_status": 502}, "HTTPStatusError", True),
    ({"kind": "drop"}, "ConnectionFailed", True),
    ({"kind": "malformed_json"}, "BadResponse", True),
    ({"kind": "slow", "delay": SLOW}, "ReadTimeout", True),
]
RETRYABLE_IDS = ["1005", "1201", "1015", "html500", "html502", "drop", "malformed", "timeout"]


@pytest.mark.parametrize(("rule", "code", "ambiguous"), RETRYABLE, ids=RETRYABLE_IDS)
def test_submit_retries_a_transient_error(
    svc: Services, sb: SandboxServer, rule: dict[str, Any], code: str, ambiguous: bool
) -> None:
    sb.configure(faults=[{"endpoint": "create", "times": 1, **rule}])
    job_id = new_job(svc)

    t0 = time.time()
    later = steps.submit(svc, job_id)
    t1 = time.time()

    assert isinstance(later, Later)
    lo, hi = backoff_range(0)
    assert lo <= later.countdown <= hi
    assert f"({code})" in later.reason
    assert_due(svc, job_id, later, t0, t1)
    job = svc.jobs.get(job_id)
    assert job.state is JobState.ACCEPTED
    assert (job.submit_attempts, job.akool_id, job.error_code) == (1, None, None)
    # 1005 slows the fleet's shared rate down
    penalized = redis_client(svc.settings.redis_url).exists(svc.limiter.penalty_key)
    assert bool(penalized) is (code == "1005")

    # The retry (the fault is spent) submits; an unknown outcome is counted as ambiguous.
    job = submitted(svc, job_id)
    assert job.state is JobState.SUBMITTED
    assert (job.submit_attempts, job.ambiguous_submits) == (2, int(ambiguous))
    assert requests_to(sb, "create") == 2
    # Only the slow POST was acted on by Akool: it is the duplicate ambiguous_submits warns of.
    created = 2 if rule["kind"] == "slow" else 1
    until(lambda: sb.stats()["submissions"] == created, 3.0, "the slow POST's job", interval=0.02)


@pytest.mark.parametrize(
    ("budget", "rule", "code", "ambiguous"),
    [
        (2, {"kind": "code", "code": 1201}, "1201", False),
        (2, {"kind": "http_500_html", "http_status": 503}, "HTTPStatusError", True),
        (3, {"kind": "malformed_json"}, "BadResponse", True),
        (0, {"kind": "code", "code": 1005}, "1005", False),
    ],
    ids=["1201-budget2", "html503-budget2", "malformed-budget3", "1005-budget0"],
)
def test_submit_fails_once_the_transient_budget_is_spent(
    make: Make, sb: SandboxServer, budget: int, rule: dict[str, Any], code: str, ambiguous: bool
) -> None:
    svc = make(TRANSIENT_ERROR_BUDGET=str(budget))
    sb.configure(faults=[{"endpoint": "create", **rule}])  # every create fails
    job_id = new_job(svc)

    for attempt in range(1, budget + 1):
        later = steps.submit(svc, job_id)
        assert isinstance(later, Later), attempt
        lo, hi = backoff_range(attempt - 1)
        assert lo <= later.countdown <= hi
        job = svc.jobs.get(job_id)
        assert (job.state, job.submit_attempts) == (JobState.ACCEPTED, attempt)

    assert steps.submit(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.error_code == code
    assert (job.error_message or "").startswith(f"gave up after {budget + 1} attempts")
    assert job.submit_attempts == budget + 1
    assert job.ambiguous_submits == (budget if ambiguous else 0)
    assert steps.submit(svc, job_id) is None
    assert requests_to(sb, "create") == budget + 1
    assert sb.stats()["submissions"] == 0


@pytest.mark.parametrize(
    ("lifecycle", "text", "state"),
    [
        ({"mode": "polls", "polls": 3}, None, JobState.SUBMITTED),
        ({"mode": "immediate"}, None, JobState.DOWNLOADING),
        ({"mode": "immediate"}, "Ends in [[fail]] at create.", JobState.FAILED),
    ],
    ids=["submitted", "downloading", "failed"],
)
def test_a_second_submit_never_posts_again(
    svc: Services, sb: SandboxServer, lifecycle: dict[str, Any], text: str | None, state: JobState
) -> None:
    sb.configure(lifecycle=lifecycle)
    job_id = new_job(svc, text=text)
    first = submitted(svc, job_id)

    # a redelivered submit, and a redelivered entry task that attaches to the same job
    assert steps.submit(svc, job_id) is None
    kwargs = {"input_text": first.request["input_text"], "voice_id": VOICE, "job_id": job_id}
    assert steps.accept(svc, "create", kwargs, "another-task") == (job_id, False)
    assert steps.submit(svc, job_id) is None

    again = svc.jobs.get(job_id)
    assert again.state is state
    assert (again.akool_id, again.submit_attempts) == (first.akool_id, 1)
    assert requests_to(sb, "create") == 1
    assert sb.stats()["submissions"] == 1


@pytest.mark.parametrize(
    ("lease", "expired"), [(30.0, False), (0.01, True)], ids=["busy", "lapsed"]
)
def test_submit_respects_another_workers_lease(
    svc: Services, sb: SandboxServer, lease: float, expired: bool
) -> None:
    job_id = new_job(svc)
    assert svc.jobs.begin_submit(job_id, lease) == "go"  # another worker is mid-POST
    if expired:
        time.sleep(0.05)  # ... and died: its lease runs out

    later = steps.submit(svc, job_id)

    job = svc.jobs.get(job_id)
    if not expired:
        assert later == Later(5.0, "another worker is submitting this job")
        assert job.state is JobState.SUBMITTING
        assert requests_to(sb, "create") == 0
    else:
        # The dead worker's POST may have reached Akool: this one is counted as ambiguous.
        assert later is None
        assert job.state is JobState.SUBMITTED
        assert (job.submit_attempts, job.ambiguous_submits) == (2, 1)
        assert requests_to(sb, "create") == 1


# -- Retry-After ------------------------------------------------------------------------------
# The sandbox's faults cannot carry a Retry-After header (a rule has no header field), so the
# rule is tested on error_delay itself with a real RateLimited carrying ``retry_after``.


@pytest.mark.parametrize(
    ("errors", "retry_after", "env", "expected"),
    [
        (1, None, {}, backoff_range(0)),
        (1, 0.5, {}, backoff_range(0)),  # shorter than the backoff: the backoff wins
        (4, 3.0, {}, backoff_range(3)),
        (1, 45.0, {}, (45.0, 45.0)),  # longer than POLL_MAX_DELAY, the backoff's own cap
        (1, 10_000.0, {}, (480.0, 480.0)),  # 900 - 300 - 120
        (1, 10_000.0, {"VISIBILITY_TIMEOUT": "600"}, (180.0, 180.0)),
        (1, 10_000.0, {"POLL_MAX_DELAY": "100", "VISIBILITY_TIMEOUT": "540"}, (120.0, 120.0)),
    ],
    ids=["none", "short", "short-4th", "long", "capped", "capped-vt600", "capped-vt540"],
)
def test_error_delay_honours_retry_after(
    make: Make,
    errors: int,
    retry_after: float | None,
    env: dict[str, str],
    expected: tuple[float, float],
) -> None:
    svc = make(**env)
    exc = RateLimited(1005, "too frequent", retry_after=retry_after)
    delay = error_delay(svc, errors, exc)
    assert expected[0] <= delay <= expected[1]
    assert delay <= longest_countdown(svc)
    if retry_after is not None and retry_after > expected[1]:
        assert delay == longest_countdown(svc)


# -- poll -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("polls_needed", "statuses"),
    [(5, [1]), (2, [2]), (4, [1, 2, 2])],
    ids=["queueing", "processing", "queueing-then-processing"],
)
def test_poll_before_completion_reschedules(
    svc: Services, sb: SandboxServer, polls_needed: int, statuses: list[int]
) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": polls_needed})
    job_id = new_job(svc)
    submitted(svc, job_id)

    for n, status in enumerate(statuses, start=1):
        t0 = time.time()
        later = steps.poll(svc, job_id)
        t1 = time.time()
        assert isinstance(later, Later)
        assert later.reason == f"Akool status {status}"
        # plain backoff from POLL_INITIAL_DELAY, x1.5 per poll (no learned durations yet)
        lo, hi = backoff_range(n - 1, base=svc.settings.poll_initial_delay, factor=1.5)
        assert lo <= later.countdown <= hi
        job = svc.jobs.get(job_id)
        assert job.state is JobState.SUBMITTED
        assert job.akool_status == status
        assert (job.polls, job.transient_errors) == (n, 0)
        assert job.due_at is not None and t0 + later.countdown <= job.due_at
        assert job.due_at <= t1 + later.countdown
        assert_due(svc, job_id, later, t0, t1)
    assert requests_to(sb, "detail") == len(statuses)


@pytest.mark.parametrize(
    ("faults", "text", "state", "code"),
    [
        ([], None, JobState.DOWNLOADING, None),
        ([fault("detail", "status_4")], None, JobState.FAILED, "akool_failed"),
        ([], "Fails at [[fail]] its first poll.", JobState.FAILED, "akool_failed"),
    ],
    ids=["status3", "status4-fault", "status4-text"],
)
def test_poll_at_a_final_status(
    svc: Services,
    sb: SandboxServer,
    faults: list[dict[str, Any]],
    text: str | None,
    state: JobState,
    code: str | None,
) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": 1})
    job_id = new_job(svc, text=text)
    akool_id = submitted(svc, job_id).akool_id or ""
    sb.configure(faults=faults)

    assert steps.poll(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is state
    assert job.error_code == code
    assert job.polls == 1
    if state is JobState.DOWNLOADING:
        assert job.akool_status is AudioStatus.COMPLETED
        assert job.audio_url == sb.job(akool_id)["url"] and job.audio_url
        assert job.detected_at is not None
    else:
        assert job.akool_status is AudioStatus.FAILED
        assert job.audio_url is None
    with pytest.raises(steps.Stale):  # nothing left to ask: a second chain stops here
        steps.poll(svc, job_id)
    assert requests_to(sb, "detail") == 1


@pytest.mark.parametrize(
    ("polls_needed", "state", "code", "last_status"),
    [
        (4, JobState.FAILED, "deadline", 2),
        (10, JobState.FAILED, "deadline", 1),
        (3, JobState.DOWNLOADING, None, 3),
    ],
    ids=["still-processing", "still-queueing", "completed-just-before"],
)
def test_the_deadline_takes_one_last_look(
    svc: Services,
    sb: SandboxServer,
    polls_needed: int,
    state: JobState,
    code: str | None,
    last_status: int,
) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": polls_needed})
    job_id = new_job(svc)
    submitted(svc, job_id)
    for _ in range(2):
        assert isinstance(steps.poll(svc, job_id), Later)
    svc.jobs.set_fields(job_id, deadline_at=time.time() - 0.01)  # the deadline has passed

    assert steps.poll(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is state
    assert job.error_code == code
    assert job.akool_status == last_status
    assert job.polls == 3
    assert requests_to(sb, "detail") == 3  # exactly one more poll
    if code == "deadline":
        assert f"last status {last_status}, 3 polls" in (job.error_message or "")
    with pytest.raises(steps.Stale):
        steps.poll(svc, job_id)
    assert requests_to(sb, "detail") == 3


def test_a_near_deadline_shortens_the_countdown(svc: Services, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": 5})
    job_id = new_job(svc)
    submitted(svc, job_id)
    svc.jobs.set_fields(job_id, deadline_at=time.time() + 0.8)

    later = steps.poll(svc, job_id)

    # the next look lands at the deadline, never later (nor sooner than 0.5 s)
    assert isinstance(later, Later)
    assert 0.5 <= later.countdown <= 0.8
    assert svc.jobs.get(job_id).state is JobState.SUBMITTED


def test_a_poll_error_near_the_deadline_still_looks_at_the_deadline(
    svc: Services, sb: SandboxServer
) -> None:
    job_id = new_job(svc)
    submitted(svc, job_id)
    # Given a job with three transient errors behind it (the next backoff is about 8 s) and
    # its deadline 0.8 s away
    svc.jobs.set_fields(job_id, transient_errors=3, deadline_at=time.time() + 0.8)
    sb.configure(faults=[fault("detail", "http_500_html")])

    later = steps.poll(svc, job_id)

    # the retry is planned for the deadline, not after it
    assert isinstance(later, Later)
    assert 0.5 <= later.countdown <= 0.8
    assert svc.jobs.get(job_id).transient_errors == 4


@pytest.mark.parametrize(("rule", "code", "ambiguous"), RETRYABLE, ids=RETRYABLE_IDS)
def test_transient_poll_errors_count_against_the_budget(
    make: Make, sb: SandboxServer, rule: dict[str, Any], code: str, ambiguous: bool
) -> None:
    budget = 2
    svc = make(TRANSIENT_ERROR_BUDGET=str(budget))
    job_id = new_job(svc)
    submitted(svc, job_id)
    sb.configure(faults=[{"endpoint": "detail", **rule}])  # every detail call fails

    for n in range(1, budget + 1):
        t0 = time.time()
        later = steps.poll(svc, job_id)
        t1 = time.time()
        assert isinstance(later, Later), n
        assert f"({code})" in later.reason
        lo, hi = backoff_range(n - 1)
        assert lo <= later.countdown <= hi
        assert_due(svc, job_id, later, t0, t1)
        job = svc.jobs.get(job_id)
        assert (job.state, job.transient_errors, job.polls) == (JobState.SUBMITTED, n, 0)

    assert steps.poll(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.error_code == code
    assert (job.error_message or "").startswith(
        f"gave up after {budget + 1} transient errors while polling"
    )
    assert requests_to(sb, "detail") == budget + 1


def test_a_transient_poll_error_then_completion(svc: Services, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": 1})
    job_id = new_job(svc)
    submitted(svc, job_id)
    sb.configure(faults=[fault("detail", "http_500_html")])

    assert isinstance(steps.poll(svc, job_id), Later)
    assert steps.poll(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.DOWNLOADING
    # an errored call is no poll; the download step starts with a budget of its own
    assert (job.polls, job.transient_errors) == (1, 0)


@pytest.mark.parametrize("code", [1008, 1003, 1104])
def test_a_permanent_poll_error_fails_at_once(svc: Services, sb: SandboxServer, code: int) -> None:
    job_id = new_job(svc)
    submitted(svc, job_id)
    sb.configure(faults=[fault("detail", "code", code=code)])

    assert steps.poll(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert (job.state, job.error_code, job.transient_errors) == (JobState.FAILED, str(code), 0)
    assert requests_to(sb, "detail") == 1


def test_poll_before_submit_is_a_bug(svc: Services) -> None:
    job_id = new_job(svc)
    with pytest.raises(steps.Stale, match="before it was submitted"):
        steps.poll(svc, job_id)


# -- timed_out ------------------------------------------------------------------------------------


def test_timed_out_counts_against_the_jobs_budget(make: Make) -> None:
    budget = 2
    svc = make(TRANSIENT_ERROR_BUDGET=str(budget))
    job_id = new_job(svc)

    for n in range(1, budget + 1):
        countdown = steps.timed_out(svc, job_id, retries=0)
        lo, hi = backoff_range(n - 1)
        assert countdown is not None and lo <= countdown <= hi
        job = svc.jobs.get(job_id)
        assert (job.state, job.transient_errors) == (JobState.ACCEPTED, n)

    assert steps.timed_out(svc, job_id, retries=0) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.FAILED
    assert job.error_code == ErrorCode.TIME_LIMIT
    assert f"{budget + 1} times" in (job.error_message or "")


@pytest.mark.parametrize(("retries", "gives_up"), [(0, False), (1, False), (2, True), (5, True)])
def test_timed_out_without_a_record_counts_the_tasks_retries(
    make: Make, retries: int, gives_up: bool
) -> None:
    svc = make(TRANSIENT_ERROR_BUDGET="2")
    countdown = steps.timed_out(svc, "never-recorded", retries)
    if gives_up:
        assert countdown is None
    else:
        lo, hi = backoff_range(retries)
        assert countdown is not None and lo <= countdown <= hi
    assert svc.jobs.find("never-recorded") is None  # nothing was written


# -- fetch and finish -----------------------------------------------------------------------------


def test_fetch_writes_the_served_bytes_and_succeeds(
    svc: Services, sb: SandboxServer, tmp_path: Path
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    job_id = new_job(svc)
    job = submitted(svc, job_id)
    assert job.state is JobState.DOWNLOADING and job.audio_url
    served = requests.get(job.audio_url, timeout=5).content

    assert steps.fetch(svc, job_id) is None

    job = svc.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED
    path = Path(job.file or "")
    assert path == (tmp_path / f"{job_id}.wav").resolve()
    assert path.read_bytes() == served
    assert job.sha256 == hashlib.sha256(served).hexdigest()
    assert job.bytes == len(served)
    akool = sb.job(job.akool_id or "")
    assert (akool["sha256"], akool["bytes"]) == (job.sha256, job.bytes)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no leftover .part file
    # a redelivered fetch of a final job downloads nothing
    downloads = requests_to(sb, "download")
    assert steps.fetch(svc, job_id) is None
    assert requests_to(sb, "download") == downloads


def test_two_fetches_of_one_job_keep_the_stored_result(
    svc: Services, sb: SandboxServer, tmp_path: Path
) -> None:
    """A duplicate chain (a sweep after a failover) downloads while another finishes the job:
    the slower one finds the job succeeded and must not delete what a local store keeps under
    the result's own name."""
    sb.configure(lifecycle={"mode": "immediate"}, faults=[fault("download", "slow", delay=1.0)])
    job_id = new_job(svc)
    submitted(svc, job_id)
    slow = threading.Thread(target=steps.fetch, args=(svc, job_id))
    slow.start()  # takes the slow download
    time.sleep(0.3)
    assert steps.fetch(svc, job_id) is None  # the fast one stores the result first
    slow.join(10)
    job = svc.jobs.get(job_id)
    assert job.state is JobState.SUCCEEDED
    path = Path(job.file or "")
    assert path.is_file()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == job.sha256
    assert requests_to(sb, "download") == 2


@pytest.mark.parametrize(
    ("faults", "env", "outcome"),
    [
        ([fault("download", "url_404")], {}, "download_gone"),
        ([], {"DOWNLOAD_MAX_BYTES": "1000"}, "download_toolarge"),
        ([fault("download", "http_500_html")], {}, "retried"),
    ],
    ids=["gone", "too-large", "transient"],
)
def test_fetch_failures(
    make: Make,
    sb: SandboxServer,
    tmp_path: Path,
    faults: list[dict[str, Any]],
    env: dict[str, str],
    outcome: str,
) -> None:
    svc = make(**env)
    sb.configure(lifecycle={"mode": "immediate"})
    job_id = new_job(svc)
    submitted(svc, job_id)
    sb.configure(faults=faults)

    later = steps.fetch(svc, job_id)

    job = svc.jobs.get(job_id)
    if outcome == "retried":
        assert isinstance(later, Later)
        lo, hi = backoff_range(0)
        assert lo <= later.countdown <= hi
        assert (job.state, job.transient_errors) == (JobState.DOWNLOADING, 1)
        assert steps.fetch(svc, job_id) is None  # the fault is spent
        assert svc.jobs.get(job_id).state is JobState.SUCCEEDED
    else:
        assert later is None
        assert (job.state, job.error_code) == (JobState.FAILED, outcome)
        assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "notify_url", "state", "owed"),
    [
        (None, None, "succeeded", False),
        ("Ends in [[fail]] here.", None, "failed", False),
        (None, "http://127.0.0.1:9/hook", "succeeded", True),
    ],
    ids=["succeeded", "failed", "notify_url-owed"],
)
def test_finish_returns_the_summary_and_claims_once(
    svc: Services,
    sb: SandboxServer,
    redis_url: str,
    text: str | None,
    notify_url: str | None,
    state: str,
    owed: bool,
) -> None:
    sb.configure(lifecycle={"mode": "immediate"})
    extra = {"notify_url": notify_url} if notify_url else {}
    job_id = new_job(svc, text=text, **extra)
    with pytest.raises(steps.Stale, match="not final"):
        steps.finish(svc, job_id)
    submitted(svc, job_id)
    if state == "succeeded":
        assert steps.fetch(svc, job_id) is None
    events = redis_client(redis_url)
    pubsub = events.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    pubsub.subscribe(svc.settings.events_channel)
    try:
        summary, notify = steps.finish(svc, job_id)
        again, notify_again = steps.finish(svc, job_id)
        published = []
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            message = pubsub.get_message(timeout=0.05)
            if message:
                published.append(json.loads(message["data"]))
    finally:
        pubsub.close()

    job = svc.jobs.get(job_id)
    assert summary == again == job.summary()
    assert summary["job_id"] == job_id and summary["state"] == state
    assert summary["akool_id"] == job.akool_id
    if state == "failed":
        assert summary["error"]["code"] == "akool_failed" and summary["file"] is None
    else:
        assert summary["error"] is None and Path(summary["file"]).is_file()
    assert notify is notify_again is owed
    assert published == [summary]  # published by the first finisher only
    assert job.finished_at is not None
    assert svc.jobs.due(job_id) is None  # claimed: out of the sweeper's index


def test_a_whole_job_step_by_step(svc: Services, sb: SandboxServer) -> None:
    sb.configure(lifecycle={"mode": "polls", "polls": 3})
    job_id = new_job(svc)
    assert steps.submit(svc, job_id) is None
    results = [steps.poll(svc, job_id) for _ in range(3)]
    assert [type(r).__name__ for r in results] == ["Later", "Later", "NoneType"]
    assert steps.fetch(svc, job_id) is None
    summary, owed = steps.finish(svc, job_id)
    assert (summary["state"], owed) == ("succeeded", False)
    job = svc.jobs.get(job_id)
    assert (job.polls, job.submit_attempts, job.transient_errors) == (3, 1, 0)
    stats = sb.stats()["requests"]
    assert (stats["create"], stats["detail"], stats["download"]) == (1, 3, 1)
