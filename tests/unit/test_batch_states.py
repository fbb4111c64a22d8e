"""`akool-audio batch` watches a file's jobs until each is final, on a real Redis: a job that
ends cancelled counts as done, like one that succeeded or failed (issue 21: the watch kept
waiting for it until its timeout)."""

from __future__ import annotations

from collections import Counter

import pytest
import redis
from rich.console import Console

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.cli import batch
from worker.jobs import JobState, JobStore

REQUEST = {"input_text": "Hello.", "voice_id": "v1"}


@pytest.fixture()
def store(redis_url: str) -> JobStore:
    return JobStore(
        redis.Redis.from_url(redis_url, decode_responses=True), Settings(redis_url=redis_url)
    )


def test_a_cancelled_job_ends_the_watch(store: JobStore) -> None:
    # Given a batch of three jobs: one failed, one cancelled, one cancelled while it polled
    for job_id in ("b-failed", "b-cancelled", "b-polling"):
        store.create(job_id, "create", REQUEST, f"task-{job_id}")
    store.fail("b-failed", "akool_failed", "status 4")
    assert store.cancel("b-cancelled") == ("cancelled", JobState.CANCELLED)
    assert store.begin_submit("b-polling", 30) == "go"
    assert store.record_submitted("b-polling", "akool-1", AudioStatus.QUEUEING, None, 0.0)
    assert store.cancel("b-polling") == ("cancelled", JobState.CANCELLED)
    console = Console(record=True, force_terminal=False, width=200)

    # When the batch watches them
    ids = ["b-failed", "b-cancelled", "b-polling"]
    done = batch.watch(store, ids, timeout=3.0, console=console, interval=0.05)

    # Then the watch ends before its timeout, showing every job as final, cancelled by name
    assert done is True
    shown = console.export_text()
    assert "3/3" in shown and "cancelled 2" in shown and "failed 1" in shown


def test_every_final_state_counts_as_done_and_nothing_else() -> None:
    c = Counter({s.value: 1 for s in JobState}) + Counter({"queued": 4})
    assert batch.finished(c) == 3
    assert sorted(batch.FINAL) == ["cancelled", "failed", "succeeded"]


def test_the_outcome_counts_cancelled_jobs_apart(store: JobStore) -> None:
    for job_id in ("o-ok", "o-cancelled"):
        store.create(job_id, "create", REQUEST, f"task-{job_id}")
    store.cancel("o-cancelled")
    assert store.begin_submit("o-ok", 30) == "go"
    assert store.record_submitted("o-ok", "akool-2", AudioStatus.COMPLETED, "https://x.test/a", 0)
    assert store.succeed("o-ok", "/tmp/a.wav", "a.wav", "ab" * 32, 10) == "succeeded"

    records = [j for j in (store.find(i) for i in ("o-ok", "o-cancelled")) if j is not None]
    outcome = batch.BatchOutcome(records, missing=0, finished=True)

    assert [j.job_id for j in outcome.succeeded] == ["o-ok"]
    assert [j.job_id for j in outcome.cancelled] == ["o-cancelled"]
    assert outcome.failed == []
