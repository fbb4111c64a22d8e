"""(5) Capacity: N jobs in flight at once against a sandbox that takes about 120 s. Every poll
is a countdown task that Celery holds in the worker's memory until due (an ETA task); we
measure what that costs per job in flight and how late polls run (actual minus planned)."""

from __future__ import annotations

import random
import time
from typing import Any

from bench.engine import WorkerSpec
from bench.jobs import send_create, text_of
from bench.polling import pct
from bench.stack import Stack

LATENCY = 120.0


def run(spec: WorkerSpec, n: int, window: float) -> dict[str, Any]:
    rng = random.Random(5)
    with Stack("capacity") as st:
        st.sandbox.configure(
            lifecycle={"mode": "duration", "base_seconds": LATENCY, "per_word_seconds": 0.0,
                       "lognormal_sigma": 0.1},
            seed=5,
        )  # fmt: skip
        # A running system has history: seed the estimator as if 200 such jobs had finished.
        st.r.lpush(
            "akool-audio:estimate:samples",
            *[f"12 {LATENCY * rng.lognormvariate(0, 0.1):.2f}" for _ in range(200)],
        )
        w = st.worker(pool=spec.pool, concurrency=spec.concurrency)
        rss0 = w.rss_bytes()
        mem0 = int(st.r.info("memory")["used_memory"])
        t0 = time.time()
        ids = [send_create(st.caller, text_of(12, rng)) for _ in range(n)]
        sent_s = time.time() - t0
        peak: dict[str, float] = {"rss": rss0, "redis": mem0, "in_flight": 0, "overdue": 0}
        at_peak_rss = 0.0
        samples = []
        while time.time() - t0 < window:
            now = time.time()
            in_flight = int(st.r.zcard("akool-audio:active"))
            overdue = int(st.r.zcount("akool-audio:active", "-inf", now - 2))
            rss, mem = w.rss_bytes(), int(st.r.info("memory")["used_memory"])
            samples.append((round(now - t0), in_flight, overdue, rss // 2**20))
            if rss > peak["rss"]:
                peak["rss"], at_peak_rss = rss, in_flight
            peak["redis"] = max(peak["redis"], mem)
            peak["in_flight"] = max(peak["in_flight"], in_flight)
            peak["overdue"] = max(peak["overdue"], overdue)
            if in_flight == 0 and now - t0 > 10:
                break
            time.sleep(2)
        elapsed = time.time() - t0
        lags, done = [], 0
        pipe = st.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(f"akool-audio:job:{job_id}", "poll_lag_max", "state", "polls")
        for lag, state, _polls in pipe.execute():
            if lag is not None:
                lags.append(float(lag))
            done += state == "succeeded"
    per_job = max(1.0, peak["in_flight"])
    return {
        "jobs": n,
        "send_s": round(sent_s, 1),
        "window_s": round(elapsed, 1),
        "succeeded": done,
        "peak_in_flight": int(peak["in_flight"]),
        "worker_rss_idle_mb": round(rss0 / 2**20, 1),
        "worker_rss_peak_mb": round(peak["rss"] / 2**20, 1),
        "worker_kb_per_job": round((peak["rss"] - rss0) / 1024 / max(1.0, at_peak_rss), 1),
        "redis_kb_per_job": round((peak["redis"] - mem0) / 1024 / per_job, 2),
        "polled_jobs": len(lags),
        "poll_lag_p50_s": round(pct(lags, 0.5), 2),
        "poll_lag_p95_s": round(pct(lags, 0.95), 2),
        "poll_lag_max_s": round(max(lags, default=float("nan")), 2),
        "peak_overdue_2s": int(peak["overdue"]),
        "timeline": samples[:: max(1, len(samples) // 12)],
    }
