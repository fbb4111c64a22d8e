"""Smoke tests of bench/: the smallest scenarios run once and yield figures. Timings are not
asserted (benchmarks print figures; tests assert behaviour)."""

from __future__ import annotations

from bench import (
    callbacks,
    capacity,
    dispatch,
    efficiency,
    memory,
    procfile,
    report,
    slowclients,
    timeline,
    web,
)
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


def test_the_slow_clients_benchmark_at_its_smallest_produces_figures() -> None:
    # Given the servers compared (gthread before, the Procfile's gevent, waitress if installed)
    # When each is probed calm and under 2 slow heads, 2 slow bodies and 5 idle sockets for 2 s
    figures = slowclients.run(hold=2, slow_heads=2, slow_bodies=2, idle=5, calm=1, threads=2,
                              per_thread=5, rounds=1)  # fmt: skip
    # Then each has its probes' figures and request rates, and the table shows line 16
    for name in ("gthread", "gevent"):
        got = figures[name]
        assert got["healthz"]["attacked"]["n"] > 0 and got["list"]["attacked"]["n"] > 0
        assert got["rates"]["list"]["per_s"] > 0 and got["rates"]["post"]["per_s"] > 0
    assert "gunicorn_conf" in figures["gevent"]["command"]
    table = report.table({"slowclients": figures})
    assert "16 gevent (shipped): /healthz under attack" in table
    assert "16 rate ratio gevent / gthread" in table


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


def test_the_capacity_benchmark_at_its_smallest_produces_figures() -> None:
    # Given the Procfile's workers (an intake worker and a poller) and jobs of about 7 s
    # When 5 jobs are sent at once
    figures = capacity.one(5, max_window=90, threshold=None, latency=7.0)
    # Then every job finished, each poll's lag was read from the timelines, and both
    # processes were measured
    assert figures["succeeded"] == 5
    assert figures["polls"] >= 5
    assert figures["poll_lag_p95_s"] == figures["poll_lag_p95_s"]  # not NaN
    assert set(figures["rss_peak_mb"]) == {p.name for p in procfile.layout()}
    table = report.table({"capacity": {"layout": ["x"], "rate_limit": 1, "parked": figures}})
    assert "poll lag p50 / p95 / max" in table


def test_the_memory_benchmark_at_its_smallest_produces_figures() -> None:
    # Given the Procfile's workers, warmed by 2 real jobs
    # When 20, then 50 jobs waiting with parked polls are seeded beside them
    figures = memory.run((20, 50), warm=2, settle=1.0, samples=2)
    # Then each size was seeded as submitted records with parked polls, and measured
    sized = figures["points"][1:]
    assert [p["jobs"] for p in sized] == [20, 50]
    assert [p["parked"] for p in sized] == [20, 50]
    assert [p["in_flight"] for p in sized] == [20, 50]
    assert figures["warm_jobs"] == 2
    assert all(figures["workers_alive"].values())
    assert figures["parked_bytes_per_job"] > 0
    assert "RSS slope, KB per job waiting" in report.table({"memory": figures})


def test_the_dispatch_benchmark_at_its_smallest_produces_figures() -> None:
    # Given 200 jobs whose parked polls are due, and nobody consuming the poll queue
    # When one dispatcher loop moves them (the run checks each is queued exactly once)
    figures = dispatch.run(200)
    # Then all were moved in batches of the default size
    assert figures["polls"] == 200
    assert figures["batches"] == 1
    assert figures["polls_per_s"] > 0
    assert "due polls moved per s" in report.table({"dispatch": figures})


def test_the_efficiency_benchmark_at_its_smallest_produces_figures() -> None:
    # Given this tree as its own base (the real run checks a commit out in a git worktree)
    # When 20 no-op tasks and 5 jobs run through a worker of each side
    figures = efficiency.compare(WorkerSpec("threads", 2), 20, 5, 1, ROOT)
    # Then each side imported the tree it was given and every job finished
    for side in ("base", "current"):
        assert figures[side]["imports"] == str(ROOT / "worker" / "jobs" / "store.py")
        assert figures[side]["finished"] == 5
        assert figures[side]["efficiency"] > 0
    assert "efficiency = jobs/s" in report.table({"efficiency": figures})


def test_the_webhook_benchmark_at_its_smallest_produces_figures() -> None:
    # Given the web service receiving the sandbox's callbacks and jobs of about 2 s
    # When 3 warm-up jobs and then 3 measured jobs run
    lifecycle = {"mode": "duration", "base_seconds": 2.0, "per_word_seconds": 0.0,
                 "lognormal_sigma": 0.1}  # fmt: skip
    figures = callbacks.run(warmup=3, n=3, lifecycle=lifecycle)
    # Then every measured job was completed by its callback, and the warm-up taught the model
    assert figures["measured"] == 3
    assert figures["by_webhook"] == 3
    assert figures["history_after_warmup"] >= 3
    assert "with webhooks, after 3 warm-up jobs" in report.table({"webhooks": figures})
