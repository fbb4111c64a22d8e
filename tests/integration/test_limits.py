"""Fleet-wide limits on real Redis: the shared rate limit across two worker processes, the
deadline, and the token cache's single refresher."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, worker_env
from tests.support.stack import caller_app
from worker.fleet.ratelimit import RateLimiter
from worker.fleet.tokencache import RedisTokenCache

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
RATE = 4.0


@pytest.fixture()
def sb(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox()


def _workers(env: dict[str, str], tmp: Path, n: int) -> list[CeleryWorker]:
    return [CeleryWorker(env, tmp / f"w{i}.log", name=f"w{i}").start() for i in range(n)]


def max_in_window(times: list[float], window: float = 1.0) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_rate_limit_holds_across_two_worker_processes(
    redis_url: str, sb: SandboxServer, tmp_path: Path
) -> None:
    # Given two workers (2 slots each) sharing a limit of 4 calls/s with a burst of 1
    sb.configure(lifecycle={"mode": "immediate"})
    env = worker_env(
        redis_url,
        sb.url,
        tmp_path / "audio",
        {"AKOOL_RATE_LIMIT": str(RATE), "AKOOL_RATE_BURST": "1"},
    )
    workers = _workers(env, tmp_path, 2)
    caller = caller_app(redis_url)
    try:
        # When 24 jobs arrive at once
        results = [
            caller.send_task(
                "audio.create",
                queue="audio",
                kwargs={
                    "input_text": f"Rate limited job {i} {uuid.uuid4().hex[:6]}.",
                    "voice_id": VOICE,
                },
            )
            for i in range(24)
        ]
        summaries = [r.get(timeout=90) for r in results]
    finally:
        for w in workers:
            w.stop()
        caller.close()
    # Then every job succeeds and Akool never saw more than the limit (+1 for the burst
    # token, the stated tolerance) in any one-second window
    assert all(s["state"] == "succeeded" for s in summaries)
    times = sorted(e["t"] for e in sb.stats()["request_log"] if e["endpoint"] == "create")
    assert len(times) == 24
    assert max_in_window(times) <= RATE + 1
    overall = (len(times) - 1) / (times[-1] - times[0])
    print(
        f"rate limit {RATE:g}/s: max {max_in_window(times)} calls in any 1 s window, "
        f"{overall:.2f} calls/s overall over {times[-1] - times[0]:.1f} s"
    )
    assert overall <= RATE * 1.1, f"{overall:.2f} calls/s"
    # Both processes did part of the work (the limit is shared, not per worker)
    assert all("audio.create" in w.text() for w in workers)


def test_a_job_that_never_finishes_fails_at_the_deadline(
    redis_url: str, sb: SandboxServer, tmp_path: Path
) -> None:
    sb.configure(lifecycle={"mode": "duration", "base_seconds": 600})
    env = worker_env(redis_url, sb.url, tmp_path / "audio", {"POLL_DEADLINE": "4"})
    (worker,) = _workers(env, tmp_path, 1)
    caller = caller_app(redis_url)
    try:
        summary = caller.send_task(
            "audio.create",
            queue="audio",
            kwargs={"input_text": "This takes ten minutes at Akool.", "voice_id": VOICE},
        ).get(timeout=60)
    finally:
        worker.stop()
        caller.close()
    assert summary["state"] == "failed"
    assert summary["error"]["code"] == "deadline"
    assert "4 s deadline" in summary["error"]["message"]
    assert sb.stats()["requests"]["detail"] >= 1


def test_limiter_grants_burst_then_asks_to_wait(redis_url: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "t:bucket", rate=2.0, burst=3)
    waits = [limiter.reserve(max_wait=0)[0] for _ in range(5)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert 0.3 < waits[3] <= 0.5
    # 1005 halves the shared rate: the wait for the next token doubles
    limiter.penalize()
    assert limiter.reserve(max_wait=0)[0] > waits[4]


def test_a_late_reservation_still_keeps_its_distance(redis_url: str) -> None:
    # Given two reservations at a limit of 4/s, the first run late by a busy worker
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "t:pace", rate=4.0, burst=1)
    assert limiter.reserve(max_wait=1.0) == (0.0, True)
    wait, reserved = limiter.reserve(max_wait=1.0)
    assert reserved and 0.2 < wait <= 0.25
    time.sleep(wait)  # the second slot has come; the first call is only being sent now
    # When both calls are sent at once, the second waits one interval at the send-time check
    assert limiter.pace() == 0.0
    assert 0.2 < limiter.pace() <= 0.25
    # and a burst of 3 lets three go back to back, then asks the fourth to wait
    bursty = RateLimiter(redis.Redis.from_url(redis_url), "t:pace3", rate=4.0, burst=3)
    assert [bursty.pace() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bursty.pace() > 0


def test_acquire_is_reserve_hold_and_pace_in_one_call(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    limiter = RateLimiter(r, "t:acq", rate=4.0, burst=1)
    # The first caller goes at once; the second reserves the next slot and holds it
    assert limiter.acquire("a", max_wait=1.0) == (0.0, "go")
    wait, outcome = limiter.acquire("b", max_wait=1.0)
    assert outcome == "reserved" and 0.2 < wait <= 0.25
    assert 100 < r.ttl("t:acq:held:b") <= 121
    # A third that may not wait that long holds nothing and is told when to ask again
    wait3, outcome3 = limiter.acquire("c", max_wait=0.1)
    assert outcome3 == "retry" and wait3 > 0.1
    assert not r.exists("t:acq:held:c")
    # b comes back on time: its slot is used without asking the bucket (which c would find
    # empty still), passes the send-time check and lets go of its hold
    time.sleep(wait)
    assert limiter.acquire("b", max_wait=1.0) == (0.0, "go")
    assert not r.exists("t:acq:held:b")
    # A holder that comes back too early is paced: the token stays its own
    assert limiter.acquire("d", max_wait=1.0)[1] == "reserved"
    wait_d, outcome_d = limiter.acquire("d", max_wait=1.0)
    assert outcome_d == "paced" and 0.1 < wait_d <= 0.25
    assert r.exists("t:acq:held:d")


class _TokenArrivesMeanwhile(redis.Redis):
    """A client on which another refresher stores the token just before we take the lock."""

    def set(self, name: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if name == "t:race:refresh" and kwargs.get("nx"):
            super().set("t:race", "token-of-the-other-refresher", ex=60)
        return super().set(name, value, *args, **kwargs)


def test_a_token_stored_before_we_take_the_lock_is_used_not_fetched_again(
    redis_url: str,
) -> None:
    r = _TokenArrivesMeanwhile.from_url(redis_url, decode_responses=True)
    cache = RedisTokenCache(r, "t:race", wait_seconds=1)
    assert cache.get() == "token-of-the-other-refresher"  # not None: we must not refresh
    assert not r.exists("t:race:refresh")  # and the lock we took is released


def test_one_refresher_fetches_the_token_for_the_fleet(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    caches = [RedisTokenCache(r, "t:token", wait_seconds=5) for _ in range(4)]
    got: list[str | None] = []
    start = threading.Barrier(4)

    def worker(cache: RedisTokenCache) -> None:
        start.wait()
        token = cache.get()
        if token is None:  # this process is the refresher
            got.append(None)
            cache.set("fresh-token")
        else:
            got.append(token)

    threads = [threading.Thread(target=worker, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got.count(None) == 1
    assert sorted(x for x in got if x) == ["fresh-token"] * 3
    # Invalidating a token that was already replaced leaves the new one alone
    caches[0].invalidate("old-token")
    assert r.get("t:token") == "fresh-token"
    caches[0].invalidate("fresh-token")
    assert r.get("t:token") is None


def test_waiting_callers_reserve_evenly_spaced_slots(redis_url: str) -> None:
    limiter = RateLimiter(redis.Redis.from_url(redis_url), "t:reserve", rate=10.0, burst=1)
    slots = [limiter.reserve(max_wait=1.0) for _ in range(6)]
    assert slots[0] == (0.0, True)
    waits = [w for w, reserved in slots[1:] if reserved]
    assert len(waits) == 5
    gaps = [b - a for a, b in zip([0.0, *waits], waits, strict=False)]
    assert all(0.08 < g < 0.12 for g in gaps), gaps  # one slot every 1/rate seconds
    # Beyond max_wait nothing is reserved: the caller asks again later.
    far = [limiter.reserve(max_wait=0.2) for _ in range(3)]
    assert far[-1][1] is False and far[-1][0] > 0.2
