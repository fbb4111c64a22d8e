"""Smoke tests of bench/: the smallest scenarios run once and yield figures. Timings are not
asserted (benchmarks print figures; tests assert behaviour)."""

from __future__ import annotations

from bench import report, timeline, web
from bench.engine import WorkerSpec, ceiling
from bench.stack import ROOT


def test_the_smallest_benchmark_produces_figures() -> None:
    # Given a private Redis, the sandbox and one real worker (bench.stack starts them)
    # When 50 no-op tasks go through it
    figures = ceiling(WorkerSpec("threads", 2), 50)
    # Then every figure is there and the table renders it
    assert figures["tasks"] == 50
    assert figures["tasks_per_s"] > 0
    assert figures["redis_cmds_per_task"] > 0
    assert "no-op Celery tasks/s" in report.table({"ceiling": figures})


def test_the_web_benchmark_at_its_smallest_produces_figures() -> None:
    # Given the web service (the Procfile's command), a private Redis and no worker
    # When 2 threads send 5 jobs each both ways, and the list is read at 100 and 300 records
    figures = web.run(threads=2, per_thread=5, rounds=1, records=300, baseline=100, samples=2)
    # Then every POST made a record, every request left a message, and the pages were whole
    intake = figures["intake"]
    assert intake["sent_each"] == 12  # each thread's uncounted first request too
    assert intake["records_accepted"] == 12
    assert intake["queued"] == 24
    assert intake["post"]["per_s"] > 0 and intake["send_task"]["per_s"] > 0
    listed = figures["list"]
    assert listed["counts"]["failed"] == 60 and sum(listed["counts"].values()) == 300
    assert listed["at_records"]["paging"]["distinct_min"] == 250
    assert listed["at_records"]["state"]["rows_min"] == 50
    table = report.table({"web": figures})
    assert "POST /v1/jobs / send_task per s" in table
    assert "p95 ms at 100 / 300 records" in table


def test_the_timeline_benchmark_at_its_smallest_produces_figures() -> None:
    # Given this tree as its own base (the real run checks a commit out in a git worktree)
    # When 5 jobs run through a worker of each side
    figures = timeline.compare(WorkerSpec("threads", 2), 5, 1, ROOT)
    # Then each side's worker imported the tree it was given and wrote every job's timeline
    for side in ("base", "current"):
        assert figures[side]["imports"] == str(ROOT / "worker" / "jobs" / "store.py")
        assert figures[side]["finished"] == 5
        assert figures[side]["events_per_job"] > 0
    assert "timeline cost" in report.table({"timeline": figures})
