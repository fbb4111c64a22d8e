"""(11) Worker memory against the number of jobs waiting for Akool: the Procfile's workers
(bench/procfile.py) with 1,000, 10,000 and 100,000 jobs in flight, each with its next poll
parked in Redis and due later than the measurement lasts.

The jobs are not sent: sending 100,000 through create would take most of an hour here. They
are seeded as submitted records with parked polls by the job scripts a real job runs
(bench/parked.py: create, begin_submit, record_submitted, park with the captured message), in
steps up to each size while the workers run. The workers are warmed first by ``WARM`` real
jobs (the sandbox finishing at create), so their code paths are loaded before the first
figure. Per size: the workers' RSS (main process and children, the median of ``SAMPLES``
readings a second apart, after ``SETTLE`` s of dispatcher and heartbeat loops), Redis
``used_memory``, and ``MEMORY USAGE`` of the parked set and the parked messages.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, cast

from bench import parked, procfile
from bench.jobs import Waiter, send_many, text_of
from bench.stack import Stack

SIZES = (1_000, 10_000, 100_000)
WARM = 100
SETTLE = 5.0
SAMPLES = 5
DUE_IN = 3600.0  # later than the run: no seeded poll is dispatched while it is measured


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``."""
    mx, my = statistics.mean(xs), statistics.mean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )


def run(
    sizes: tuple[int, ...] = SIZES, warm: int = WARM, settle: float = SETTLE, samples: int = SAMPLES
) -> dict[str, Any]:
    """RSS and Redis memory at each size; ``settle`` and ``samples`` as ``SETTLE`` and
    ``SAMPLES`` (smaller in the test that only checks the figures are produced)."""
    with Stack("memory") as st:
        st.sandbox.configure(lifecycle={"mode": "immediate"})
        env = st.env()
        workers = procfile.start(st, env)
        waiter = Waiter(st.r)
        warmed = waiter.wait(send_many(st.caller, warm, lambda i: text_of(12)), 60 + warm)
        waiter.close()
        points: list[dict[str, Any]] = []

        def measure(jobs: int, seeding_s: float) -> None:
            time.sleep(settle)
            readings = []
            for _ in range(samples):
                readings.append(procfile.rss(workers))
                time.sleep(1)
            rss = {k: statistics.median(r[k] for r in readings) for k in workers}
            usage = [st.r.memory_usage(k, samples=0) or 0 for k in
                     ("akool-audio:parked", "akool-audio:parked-msg")]  # fmt: skip
            # Each parked job's message is kept in its own hash (poll_msg): its length on a
            # sample of up to 100 parked jobs, times the parked jobs
            sample = cast(list[str], st.r.zrange("akool-audio:parked", 0, 99))
            pipe = st.r.pipeline(transaction=False)
            for job_id in sample:
                pipe.hstrlen(f"akool-audio:job:{job_id}", "poll_msg")
            lengths = [int(x) for x in pipe.execute()]
            if lengths:
                usage.append(int(statistics.mean(lengths) * int(st.r.zcard("akool-audio:parked"))))
            points.append({
                "jobs": jobs,
                "in_flight": int(st.r.zcard("akool-audio:active")),
                "parked": int(st.r.zcard("akool-audio:parked")),
                "rss_mb": {k: round(v / 2**20, 2) for k, v in rss.items()},
                "rss_total_mb": round(sum(rss.values()) / 2**20, 2),
                "redis_used_mb": round(int(st.r.info("memory")["used_memory"]) / 2**20, 2),
                "parked_bytes": sum(usage),
                "held_unacked": int(st.r.hlen("unacked")),
                "seeding_s": seeding_s,
            })  # fmt: skip

        measure(0, 0.0)
        have = 0
        for size in sizes:
            seeded = parked.run(env, have, size - have, DUE_IN)
            have = size
            measure(size, seeded["seconds"])
        alive = {k: w.proc is not None and w.proc.poll() is None for k, w in workers.items()}
    base = points[0]
    sized = points[1:]
    xs = [float(p["jobs"]) for p in sized]
    slope_kb = _slope(xs, [p["rss_total_mb"] * 1024 for p in sized])
    per_job = [
        (p["redis_used_mb"] - base["redis_used_mb"]) * 2**20 / 1024 / p["jobs"] for p in sized
    ]
    return {
        "sizes": list(sizes),
        "layout": [p.label() for p in procfile.layout()],
        "warm_jobs": len(warmed),
        "points": points,
        "worker_kb_per_job": round(slope_kb, 4),
        "worker_rss_growth_mb": round(sized[-1]["rss_total_mb"] - sized[0]["rss_total_mb"], 2),
        "redis_kb_per_job": [round(x, 2) for x in per_job],
        "parked_bytes_per_job": round(sized[-1]["parked_bytes"] / sized[-1]["jobs"], 1),
        "workers_alive": alive,
    }
