"""(5) Capacity: N jobs sent at once against a sandbox that takes about 120 s each, through the
Procfile's process layout (an intake worker for entry, download and notify work beside a
poller, bench/procfile.py). How late do polls run (actual minus planned), how long after the
sandbox finished a job do we notice, and what do the workers and Redis hold meanwhile?

Run twice in the same run: with the defaults (a poll that waits longer than
``POLL_PARK_THRESHOLD`` is parked in Redis and dispatched when due, worker/jobs/parking.py)
and with ``POLL_PARK_THRESHOLD`` so high that every wait is a countdown message held by a worker
(the previous design, in the same layout). Both use ``AKOOL_RATE_LIMIT`` = ``RATE``: the sandbox
has no limit of its own, and the default 5 calls/s could not serve N jobs x ~3 calls in 120 s.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any

from bench import procfile
from bench.jobs import send_create, text_of
from bench.polling import pct
from bench.stack import Stack

LATENCY = 120.0
#: Akool calls per second for the whole fleet here (AKOOL_RATE_LIMIT and AKOOL_RATE_BURST):
#: above what this machine's two processes serve, so the waiting shows where it lives.
RATE = 200
#: POLL_PARK_THRESHOLD of the previous design's run: no wait is ever parked.
NEVER = 1e9
ACTIVE, PARKED = "akool-audio:active", "akool-audio:parked"


def one(
    n: int, max_window: float, threshold: float | None, latency: float = LATENCY, pollers: int = 1
) -> dict[str, Any]:
    """N jobs at once with POLL_PARK_THRESHOLD ``threshold`` (None: the default), each taking
    about ``latency`` s at the sandbox, with ``pollers`` poller processes."""
    rng = random.Random(5)
    with Stack("capacity") as st:
        st.sandbox.configure(
            lifecycle={"mode": "duration", "base_seconds": latency, "per_word_seconds": 0.0,
                       "lognormal_sigma": 0.1},
            seed=5,
        )  # fmt: skip
        # A running system has history: seed the estimator as if 200 such jobs had finished.
        st.r.lpush(
            "akool-audio:estimate:samples",
            *[f"12 {latency * rng.lognormvariate(0, 0.1):.2f}" for _ in range(200)],
        )
        extra = {"AKOOL_RATE_LIMIT": str(RATE), "AKOOL_RATE_BURST": str(RATE)}
        if threshold is not None:
            extra["POLL_PARK_THRESHOLD"] = str(threshold)
        workers = procfile.start(st, st.env(**extra), scale={"poller": pollers})
        rss0 = procfile.rss(workers)
        mem0 = int(st.r.info("memory")["used_memory"])
        cpu0 = procfile.cpu(st, workers)
        t0 = time.time()
        ids = [send_create(st.caller, text_of(12, rng)) for _ in range(n)]
        sent_s = time.time() - t0
        peak_rss = dict(rss0)
        peak: dict[str, int] = {"redis": mem0, "in_flight": 0, "held": 0, "parked": 0}
        samples = []
        load = 0.0  # the machine's 1-minute load average, shared with other work
        while time.time() - t0 < max_window:
            now = time.time()
            pipe = st.r.pipeline(transaction=False)
            pipe.zcard(ACTIVE)
            pipe.zcount(ACTIVE, "-inf", now - 2)
            pipe.zcard(PARKED)
            pipe.llen("poll")
            pipe.llen("audio")
            pipe.hlen("unacked")
            in_flight, overdue, parked, poll_q, audio_q, held = (int(x) for x in pipe.execute())
            rss = procfile.rss(workers)
            mem = int(st.r.info("memory")["used_memory"])
            samples.append([round(now - t0), in_flight, overdue, parked, poll_q, audio_q, held,
                            *(v // 2**20 for v in rss.values())])  # fmt: skip
            peak_rss = {k: max(v, rss[k]) for k, v in peak_rss.items()}
            peak["redis"] = max(peak["redis"], mem)
            peak["in_flight"] = max(peak["in_flight"], in_flight)
            load = max(load, os.getloadavg()[0])
            peak["held"] = max(peak["held"], held)
            peak["parked"] = max(peak["parked"], parked)
            if in_flight == 0 and now - t0 > 10:
                break
            time.sleep(3)
        elapsed = time.time() - t0
        cpu1 = procfile.cpu(st, workers)
        at_sandbox = {j["_id"]: j for j in st.sandbox.jobs()}
        api = st.sandbox.stats()["requests"]
        pipe = st.r.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(f"akool-audio:job:{job_id}", "poll_lag_max", "state", "polls",
                       "detected_at", "akool_id")  # fmt: skip
            pipe.lrange(f"akool-audio:events:{job_id}", 0, -1)
        rows = pipe.execute()
        logs = {name: w.text()[w.offset :] for name, w in workers.items()}
    lags: list[float] = []  # every poll: its timeline event's t minus its planned time
    ran: list[float] = []  # when each poll ran, and when it was planned
    planned: list[float] = []
    job_lags, polls, delays, shares = [], [], [], []
    done = 0
    for (lag_max, state, n_polls, detected, akool_id), events in zip(rows[::2], rows[1::2],
                                                                     strict=True):  # fmt: skip
        for raw in events:
            e = json.loads(raw)
            if e.get("type") == "poll" and e.get("planned") is not None:
                lags.append(float(e["t"]) - float(e["planned"]))
                ran.append(float(e["t"]) - t0)
                planned.append(float(e["planned"]) - t0)
        if lag_max is not None:
            job_lags.append(float(lag_max))
        done += state == "succeeded"
        sb = at_sandbox.get(akool_id or "")
        if state == "succeeded" and detected and sb and sb.get("completed_at"):
            polls.append(int(n_polls or 0))
            delay = float(detected) - sb["completed_at"]
            delays.append(delay)
            shares.append(delay / (sb["completed_at"] - sb["created_at"]))
    problems = {name: _warnings(text) for name, text in logs.items()}
    return {
        "jobs": n,
        "latency_s": latency,
        "poll_park_threshold_s": threshold if threshold is not None else "default",
        "pollers": pollers,
        "rate_limit": RATE,
        "send_s": round(sent_s, 1),
        "load_1m_max": round(load, 2),
        "window_s": round(elapsed, 1),
        "succeeded": done,
        "peak_in_flight": peak["in_flight"],
        "peak_parked": peak["parked"],
        "peak_held_unacked": peak["held"],
        "rss_idle_mb": {k: round(v / 2**20, 1) for k, v in rss0.items()},
        "rss_peak_mb": {k: round(v / 2**20, 1) for k, v in peak_rss.items()},
        "worker_kb_per_job": round(
            sum(peak_rss[k] - rss0[k] for k in rss0) / 1024 / max(1, peak["in_flight"]), 2
        ),
        "redis_kb_per_job": round((peak["redis"] - mem0) / 1024 / max(1, peak["in_flight"]), 2),
        "polls": len(lags),
        "poll_lag_p50_s": round(pct(lags, 0.5), 2),
        "poll_lag_p95_s": round(pct(lags, 0.95), 2),
        "poll_lag_max_s": round(max(lags, default=float("nan")), 2),
        "job_lag_max_p95_s": round(pct(job_lags, 0.95), 2),
        "polls_per_s_peak_planned_ran": [_peak(planned), _peak(ran)],
        "polls_per_job_median": pct([float(p) for p in polls], 0.5),
        "detection_delay_p50_s": round(pct(delays, 0.5), 2),
        "detection_delay_p95_s": round(pct(delays, 0.95), 2),
        "detection_share_p95": round(pct(shares, 0.95), 4),
        "api_calls": api,
        "cpu_s": {k: round(cpu1[k] - cpu0[k], 1) for k in cpu0},
        "worker_warnings": problems,
        "timeline_columns": ["s", "in_flight", "overdue_2s", "parked", "poll_queue",
                             "audio_queue", "unacked", *(f"rss_mb_{k}" for k in workers)],
        "timeline": samples[:: max(1, len(samples) // 16)],
    }  # fmt: skip


def _peak(times: list[float], width: float = 10.0) -> float:
    """The most polls in any ``width``-second window (aligned), per second."""
    counts: dict[int, int] = {}
    for t in times:
        counts[int(t // width)] = counts.get(int(t // width), 0) + 1
    return round(max(counts.values(), default=0) / width, 1)


def _warnings(text: str, keep: int = 6) -> dict[str, Any]:
    """How many WARNING/ERROR lines a worker logged, and the first few."""
    lines = [ln for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln]
    return {"lines": len(lines), "first": [ln[:240] for ln in lines[:keep]]}


def run(n: int, max_window: float, compare: bool = True, pollers: int = 1) -> dict[str, Any]:
    """The defaults (parking), then every wait a countdown (the previous design), N jobs each;
    with ``pollers`` > 1 also the defaults with that many poller processes."""
    out: dict[str, Any] = {"layout": [p.label() for p in procfile.layout()], "rate_limit": RATE}
    out["parked"] = one(n, max_window, None)
    if pollers > 1:
        out["parked_pollers"] = one(n, max_window, None, pollers=pollers)
    if compare:
        out["countdown"] = one(n, max_window, NEVER)
        a, b = out["parked"]["poll_lag_p95_s"], out["countdown"]["poll_lag_p95_s"]
        out["lag_p95_ratio_countdown_over_parked"] = round(b / a, 1) if a > 0 else None
    return out
