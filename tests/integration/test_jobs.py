"""Job records on a real Redis: idempotent creation, the submit lease, transitions."""

from __future__ import annotations

import time

import pytest

from config.settings import Settings
from worker.akool.models import AudioStatus
from worker.jobs import JobConflict, JobState, JobStore
from worker.maintenance import sweeper
from worker.services import redis_client

REQ = {"input_text": "Hi", "voice_id": "v1"}


@pytest.fixture()
def jobs(redis_url: str) -> JobStore:
    settings = Settings.from_env({"REDIS_URL": redis_url})
    return JobStore(redis_client(redis_url), settings)


def test_create_is_idempotent_and_refuses_another_payload(jobs: JobStore) -> None:
    assert jobs.create("j1", "create", REQ, "task-a") == ("created", "task-a")
    assert jobs.create("j1", "create", REQ, "task-b") == ("exists", "task-a")
    with pytest.raises(JobConflict, match="different request"):
        jobs.create("j1", "create", {**REQ, "input_text": "Other"}, "task-c")
    job = jobs.get("j1")
    assert job.state is JobState.ACCEPTED and job.request == REQ


def test_submit_lease_lets_one_worker_post(jobs: JobStore) -> None:
    jobs.create("j2", "create", REQ, "t")
    assert jobs.begin_submit("j2", lease_seconds=30) == "go"
    assert jobs.begin_submit("j2", lease_seconds=30) == "busy"
    jobs.record_submitted("j2", "ak-2", 1, None, next_due=time.time() + 5)
    assert jobs.begin_submit("j2", lease_seconds=30) == "submitted"
    assert jobs.job_for_akool_id("ak-2") == "j2"
    # A second answer for the same job never overwrites the first Akool id.
    assert not jobs.record_submitted("j2", "ak-other", 1, None, next_due=time.time())
    assert jobs.get("j2").akool_id == "ak-2"


def test_an_expired_lease_with_an_unknown_outcome_counts_as_ambiguous(jobs: JobStore) -> None:
    jobs.create("j3", "create", REQ, "t")
    assert jobs.begin_submit("j3", lease_seconds=0.01) == "go"
    time.sleep(0.05)  # the worker died mid-POST: its lease runs out
    assert jobs.begin_submit("j3", lease_seconds=30) == "go"
    job = jobs.get("j3")
    assert (job.submit_attempts, job.ambiguous_submits) == (2, 1)
    jobs.release_submit("j3", "1003", ambiguous=False)
    assert jobs.begin_submit("j3", lease_seconds=30) == "go"
    assert jobs.get("j3").ambiguous_submits == 1  # a definite answer is not ambiguous


def test_a_final_job_stays_indexed_until_a_finisher_claims_it(
    jobs: JobStore, redis_url: str
) -> None:
    jobs.create("j4", "create", REQ, "t")
    jobs.record_submitted("j4", "ak-4", 3, "http://x/a.wav", next_due=time.time())
    assert jobs.record_poll("j4", 3, "http://x/a.wav", time.time()) is JobState.DOWNLOADING
    assert jobs.succeed("j4", "/tmp/j4.wav", "/tmp/j4.wav", "ab" * 32, 10) == "succeeded"
    assert not jobs.fail("j4", "late", "a final state is never overwritten")
    assert "j4" in jobs.overdue(time.time() + 1)  # the sweeper would finish it
    assert jobs.claim_finish("j4") is True
    assert jobs.claim_finish("j4") is False
    assert "j4" not in jobs.overdue(time.time() + 1)
    job = jobs.get("j4")
    assert job.state is JobState.SUCCEEDED and job.summary()["error"] is None
    assert 0 < redis_client(redis_url).ttl(jobs.job_key("j4")) <= 30 * 86400


def test_a_final_job_is_never_brought_back_by_a_late_submit(jobs: JobStore) -> None:
    jobs.create("j5", "create", REQ, "t")
    assert jobs.begin_submit("j5", lease_seconds=30) == "go"
    assert jobs.fail("j5", "deadline", "ended while the POST was in flight")
    # The POST's answer arrives after the job was ended: recorded for audit, state unchanged.
    assert not jobs.record_submitted("j5", "ak-late", 1, None, next_due=time.time())
    jobs.release_submit("j5", "1003", ambiguous=False)
    job = jobs.get("j5")
    assert job.state is JobState.FAILED and job.akool_id is None
    assert job.orphan_akool_id == "ak-late"
    assert jobs.begin_submit("j5", lease_seconds=30) == "final"
    assert jobs.begin_submit("no-such-job", lease_seconds=30) == "missing"


def test_a_cancel_no_step_finishes_is_finished_by_the_sweeper(jobs: JobStore) -> None:
    jobs.create("j6", "create", {"input_text": "hi"}, "t6")
    assert jobs.begin_submit("j6", 30) == "go"
    url = "https://a.example/x"
    jobs.record_submitted("j6", "ak-6", AudioStatus.COMPLETED, url, time.time())
    jobs.record_poll("j6", AudioStatus.COMPLETED, url, time.time())
    assert jobs.get("j6").state is JobState.DOWNLOADING
    assert jobs.cancel("j6") == ("cancelling", JobState.CANCELLING)  # a download may be in flight
    assert jobs.cancel("j6") == ("asked", JobState.CANCELLING)
    now = time.time()
    assert sweeper.decide(jobs, "j6", now, grace=1, stall=60) is sweeper.Action.SKIP
    assert sweeper.decide(jobs, "j6", now + 61, grace=1, stall=60) is sweeper.Action.CANCEL
    assert jobs.cancel("j6", force=True) == ("cancelled", JobState.CANCELLED)
    assert jobs.cancel("j6") == ("final", JobState.CANCELLED)
    assert jobs.get("j6").akool_id == "ak-6"
