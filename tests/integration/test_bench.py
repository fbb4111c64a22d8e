"""Smoke test of bench/: the smallest scenario runs once and yields figures. Timings are not
asserted (benchmarks print figures; tests assert behaviour)."""

from __future__ import annotations

from bench import report
from bench.engine import WorkerSpec, ceiling


def test_the_smallest_benchmark_produces_figures() -> None:
    # Given a private Redis, the sandbox and one real worker (bench.stack starts them)
    # When 50 no-op tasks go through it
    figures = ceiling(WorkerSpec("threads", 2), 50)
    # Then every figure is there and the table renders it
    assert figures["tasks"] == 50
    assert figures["tasks_per_s"] > 0
    assert figures["redis_cmds_per_task"] > 0
    assert "no-op Celery tasks/s" in report.table({"ceiling": figures})
