"""The listing indexes and the timeline on a real Redis: pages newest first without gaps or
repeats, filters by state and id prefix, counts per state, pruning of expired records, and the
events each transition writes in the same call."""

from __future__ import annotations

import time

import pytest
import redis

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.jobs import JobState, JobStore

REQUEST = {"input_text": "hello", "voice_id": "v1"}


@pytest.fixture()
def store(redis_url: str) -> JobStore:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    return JobStore(r, Settings(redis_url=redis_url))


def make(store: JobStore, n: int, prefix: str = "job") -> list[str]:
    ids = [f"{prefix}-{i:04d}" for i in range(n)]
    for job_id in ids:
        store.create(job_id, "create", REQUEST, f"task-{job_id}")
    return ids


def every_page(store: JobStore, **filters: object) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = store.page(cursor=cursor, **filters)  # type: ignore[arg-type]
        pages.append([j.job_id for j in page.jobs])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor


def test_pages_are_newest_first_without_gaps_or_repeats(store: JobStore) -> None:
    ids = make(store, 230)
    pages = every_page(store, limit=37)
    assert [len(p) for p in pages] == [37] * 6 + [8]
    assert [i for p in pages for i in p] == list(reversed(ids))


def test_equal_creation_times_still_page_exactly(store: JobStore, redis_url: str) -> None:
    ids = make(store, 40)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.zadd(store.listing.created_key, dict.fromkeys(ids, 1000.0))  # every job at one instant
    pages = every_page(store, limit=7)
    assert sorted(i for p in pages for i in p) == ids
    assert len([i for p in pages for i in p]) == 40


def test_state_filter_and_counts_follow_each_transition(store: JobStore) -> None:
    ids = make(store, 12)
    for job_id in ids[:4]:
        store.fail(job_id, "1003", "bad")
    for job_id in ids[4:6]:
        assert store.begin_submit(job_id, 30) == "go"
        store.record_submitted(job_id, f"ak-{job_id}", AudioStatus.QUEUEING, None, time.time())
    store.cancel(ids[4])
    counts = store.counts()
    assert counts["failed"] == 4
    assert counts["submitted"] == 1
    assert counts["cancelled"] == 1
    assert counts["accepted"] == 6
    assert sum(counts.values()) == 12
    failed = every_page(store, state="failed", limit=3)
    assert [i for p in failed for i in p] == list(reversed(ids[:4]))


def test_prefix_search_in_id_order_with_and_without_a_state(store: JobStore) -> None:
    make(store, 30, "alpha")
    beta = make(store, 25, "beta")
    make(store, 5, "betamax")
    for job_id in beta[:10]:
        store.fail(job_id, "1003", "bad")
    found = [i for p in every_page(store, prefix="beta-", limit=6) for i in p]
    assert found == beta
    failed = [i for p in every_page(store, prefix="beta", state="failed", limit=4) for i in p]
    assert failed == beta[:10]
    assert store.page(prefix="gamma").jobs == []


@pytest.mark.parametrize(
    "filters",
    [
        {"state": "nope"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "not-a-cursor"},
        {"cursor": "e30"},
    ],
)
def test_bad_filters_are_refused(store: JobStore, filters: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        store.page(**filters)  # type: ignore[arg-type]


def test_prune_drops_only_entries_of_expired_records(store: JobStore, redis_url: str) -> None:
    ids = make(store, 20)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.delete(*(store.job_key(i) for i in ids[:5]))  # as if they had expired
    assert store.pruning.prune_listing(time.time() + 1) == 5
    assert [j.job_id for j in store.page(limit=200).jobs] == list(reversed(ids[5:]))
    assert sum(store.counts().values()) == 15


def test_a_page_skips_records_that_expired_before_the_prune(
    store: JobStore, redis_url: str
) -> None:
    ids = make(store, 5)
    redis.Redis.from_url(redis_url).delete(store.job_key(ids[2]))
    assert [j.job_id for j in store.page().jobs] == [ids[4], ids[3], ids[1], ids[0]]


def test_each_transition_writes_its_event(store: JobStore) -> None:
    store.create("t-1", "create", REQUEST, "task-1")
    assert store.begin_submit("t-1", 30) == "go"
    store.record_submitted("t-1", "ak-1", AudioStatus.QUEUEING, None, time.time() + 5)
    store.record_poll("t-1", AudioStatus.PROCESSING, None, time.time() + 5)
    store.record_poll("t-1", AudioStatus.COMPLETED, "https://a.example/x.mp3", time.time())
    fetched = {"t": time.time(), "started": time.time() - 0.1, "bytes": 10, "sha256": "ab" * 32}
    assert store.succeed("t-1", "/audio/t-1.mp3", "/audio/t-1.mp3", "ab" * 32, 10, fetched)
    events = store.timeline.events("t-1")
    assert [e["type"] for e in events] == [
        "accepted",
        "submit_started",
        "submitted",
        "poll",
        "status",
        "poll",
        "status",
        "downloaded",
        "stored",
        "succeeded",
    ]
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    poll = events[3]
    assert poll["planned"] == pytest.approx(store.get("t-1").submitted_at + 5, abs=1)
    assert events[4] == {**events[4], "from": 1, "to": 2}
    assert events[7]["bytes"] == 10
    assert events[8]["location"] == "/audio/t-1.mp3"
    # A final record and its timeline expire together.
    r = redis.Redis.from_url(store.s.redis_url)
    assert 0 < r.ttl(store.timeline.events_key("t-1")) <= store.s.job_retention_days * 86400


def test_retry_keeps_the_timeline_and_lifts_the_expiry(store: JobStore) -> None:
    store.create("t-2", "create", REQUEST, "task-2")
    store.fail("t-2", "1003", "bad")
    job = store.retry("t-2")
    assert job.state is JobState.ACCEPTED
    assert job.attempt == 2
    assert job.attempts[0]["error"] == {"code": "1003", "message": "bad"}
    assert [e["type"] for e in store.timeline.events("t-2")] == ["accepted", "failed", "retried"]
    r = redis.Redis.from_url(store.s.redis_url)
    assert r.ttl(store.job_key("t-2")) == -1
    assert r.ttl(store.timeline.events_key("t-2")) == -1
    assert store.counts()["accepted"] == 1
    assert store.counts()["failed"] == 0
