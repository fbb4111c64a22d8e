"""(12) The due-poll dispatcher's throughput: how many due polls per second one
``Dispatcher.run_once`` loop (worker/jobs/parking.py, in this process, with the settings a
worker gets: ``DISPATCH_BATCH`` 1000) moves from the parked set onto the ``poll`` queue.

``N`` jobs are seeded as submitted records whose next poll is parked and already due
(bench/parked.py: the job scripts and the message a worker would park), with no worker
running, so nobody consumes the queue. The shared rate limit is the benchmark's (100,000
calls/s: the dispatcher queues at most rate x 2 s minus what already waits, which then does not
bind). Timed from the first batch to the one that found nothing due; every poll must be on the
queue once and the parked set and messages empty.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench import parked
from bench.stack import Stack
from config.settings import Settings
from worker.jobs import JobStore
from worker.jobs.parking import Dispatcher
from worker.services import rate_limiter

N = 100_000


def run(n: int = N) -> dict[str, Any]:
    with Stack("dispatch") as st:
        env = st.env()
        seeded = parked.run(env, 0, n, -1.0)
        settings = Settings.from_env(env)
        jobs = JobStore(st.r, settings)
        dispatcher = Dispatcher(jobs.parking, rate_limiter(settings, st.r).penalty_key, settings)
        mem_before = int(st.r.info("memory")["used_memory"])
        batches: list[float] = []
        t0 = time.perf_counter()
        while True:
            b0 = time.perf_counter()
            moved, _ = dispatcher.run_once()
            if not moved:
                break
            batches.append(time.perf_counter() - b0)
        elapsed = time.perf_counter() - t0
        queued = int(st.r.llen("poll"))
        left = int(st.r.zcard(jobs.parking.parked_key)) + int(
            st.r.hlen(jobs.parking.parked_messages_key)
        )
        distinct = len(set(st.r.lrange("poll", 0, -1)))
        mem_after = int(st.r.info("memory")["used_memory"])
    if dispatcher.moved != n or queued != n or distinct != n or left:
        raise RuntimeError(f"moved {dispatcher.moved}, queued {queued} ({distinct} distinct), "
                           f"{left} left parked, of {n}")  # fmt: skip
    return {
        "polls": n,
        "batch": settings.dispatch_batch,
        "rate_limit": settings.akool_rate_limit,
        "seeding_s": seeded["seconds"],
        "seconds": round(elapsed, 3),
        "polls_per_s": round(n / elapsed),
        "batches": len(batches),
        "batch_ms_median": round(statistics.median(batches) * 1000, 2),
        "batch_ms_max": round(max(batches) * 1000, 2),
        "redis_mb_before_after": [round(mem_before / 2**20, 1), round(mem_after / 2**20, 1)],
    }
