"""Find active jobs that nobody is moving any more and say how to move them again.

Every active job sits in a ZSET scored by when its next action is due; a live poll chain pushes
the score forward each time it runs. A job overdue by more than ``SWEEP_GRACE`` has lost its
message (a worker died beyond redelivery, Redis lost a write, a chain broke). The sweeper hands
such jobs back to the pipeline and pushes their score forward by the grace, so the next sweep
leaves them alone while the re-enqueued step gets going.

Nothing here POSTs to Akool: a job that was never submitted goes through ``pipeline.submit``,
whose lease (``JobStore.begin_submit``) refuses a second POST while another worker holds it and
counts an ambiguous one. A duplicate poll chain only re-polls; the first to record status 3
moves the job to downloading, and ``claim_finish`` lets one finisher notify.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from worker.jobs import JobState, JobStore


class Action(StrEnum):
    SUBMIT = "submit"  # accepted, or submitting with an expired lease: submit, then poll
    POLL = "poll"  # submitted: poll again
    DOWNLOAD = "download"  # Akool finished: fetch and finish
    FINISH = "finish"  # final but still indexed: finish (claimed once) and drop from the index
    FAIL = "fail"  # never submitted and past its deadline: fail and finish
    CANCEL = "cancel"  # cancel asked, and no step ended it: cancel and finish
    PRUNE = "prune"  # the record vanished: drop the id from the index
    SKIP = "skip"  # a worker holds the submit lease: leave it


@dataclass
class SweepReport:
    checked: int = 0
    actions: dict[str, list[str]] = field(default_factory=dict)

    def add(self, action: Action, job_id: str) -> None:
        self.actions.setdefault(action.value, []).append(job_id)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.actions.items()}


MAX_DOWNLOAD_SWEEPS = 3
#: A parked poll overdue by more than this many SWEEP_GRACE is resumed by the sweeper (its
#: parked message is dropped first): no dispatcher has run for that long.
PARKED_PATIENCE = 5


def decide(jobs: JobStore, job_id: str, now: float, grace: float, stall: float) -> Action:
    """What to do with one overdue job id (a pure reading of its record)."""
    job = jobs.find(job_id)
    if job is None:
        return Action.PRUNE
    if job.state.is_final:
        return Action.FINISH
    if job.state is JobState.CANCELLING:
        # The step in flight ends it at its next check; a silence as long as a stalled
        # download's means there is none.
        return Action.SKIP if now - job.updated_at <= stall else Action.CANCEL
    if job.state.is_fetching:
        # A download legitimately takes a while: only a long silence means it is lost, and a
        # download the sweeper restarted MAX_DOWNLOAD_SWEEPS times without progress is given up.
        if now - job.updated_at <= stall:
            return Action.SKIP
        if job.state is JobState.STORING:
            # Waiting for the result store: its own window decides when to give up (the step
            # fails it with storage_failed), never the count of restarts.
            return Action.DOWNLOAD
        return Action.FAIL if job.sweeps >= MAX_DOWNLOAD_SWEEPS else Action.DOWNLOAD
    if job.state is JobState.SUBMITTED:
        parked = jobs.parking.parked_due(job_id)
        if parked is not None and now - parked < PARKED_PATIENCE * grace:
            # The dispatcher sends it (late only while the shared rate limit holds it back).
            return Action.SKIP
        return Action.POLL
    if job.state is JobState.SUBMITTING and (job.submit_lease_until or 0) > now:
        return Action.SKIP
    if job.deadline_at is not None and now > job.deadline_at + grace:
        return Action.FAIL
    return Action.SUBMIT


def sweep(jobs: JobStore, grace: float, stall: float, limit: int = 500) -> SweepReport:
    """Classify every job overdue by more than ``grace`` and push its score forward.

    The caller enqueues the continuation for each action (tasks/maintenance.py).
    """
    now = time.time()
    report = SweepReport()
    for job_id in jobs.overdue(now - grace, limit):
        report.checked += 1
        action = decide(jobs, job_id, now, grace, stall)
        if action in (Action.PRUNE, Action.FINISH):
            jobs.unindex(job_id)
        else:
            # xx: never re-add a job that finished meanwhile (its score was removed).
            jobs.set_due(job_id, now + grace)
        if action not in (Action.PRUNE, Action.SKIP):
            jobs.count_sweep(job_id, action.value)
        report.add(action, job_id)
    return report
