"""(14) Polls per job with webhooks on, once the duration estimator has history.

The web service runs as a process (``akool-audio web`` with ``API_TOKENS``, the client id and
secret that decrypt Akool's callbacks), and the Procfile's workers (bench/procfile.py) run with
``PUBLIC_BASE_URL`` pointing at it, so every job asks the sandbox to call back. Jobs arrive at
``RATE`` a second with line 4's lifecycle (about 13 s at the sandbox). A warm-up batch runs
first and is waited for: its callbacks teach the estimator (worker/web/webhook.py), which
starts empty. Then the measured batch: per job, the polls it cost (the record's count: polls
that reached Akool) and how long after the sandbox finished it we noticed.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from bench import procfile
from bench.jobs import Waiter, send_create, text_of
from bench.polling import CLIENT_ID, LIFECYCLE, pct
from bench.stack import API_KEY, Stack
from worker.devstack.localredis import free_port
from worker.devstack.procs import Proc

TOKEN = "bench-api-token-0123456789abcdef"
RATE = 2.0
SAMPLES_KEY = "akool-audio:estimate:samples"


def _batch(st: Stack, n: int, rng: random.Random, waiter: Waiter) -> list[str]:
    ids = []
    t0 = time.monotonic()
    for i in range(n):
        ids.append(send_create(st.caller, text_of(rng.randrange(20, 380), rng)))
        time.sleep(max(0.0, t0 + (i + 1) / RATE - time.monotonic()))
    done = waiter.wait(ids, timeout=180)
    if len(done) < n:
        raise RuntimeError(f"only {len(done)} of {n} jobs finished")
    return ids


def run(warmup: int, n: int, lifecycle: dict[str, Any] | None = None) -> dict[str, Any]:
    rng = random.Random(14)
    with Stack("webhooks") as st:
        st.sandbox.configure(lifecycle=lifecycle or LIFECYCLE, seed=14)
        port = free_port()
        keys = {"AKOOL_CLIENT_ID": CLIENT_ID, "AKOOL_CLIENT_SECRET": API_KEY}
        env = st.env(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **keys)
        args = [str(Path(sys.executable).with_name("akool-audio")), "web", "--host",
                "127.0.0.1", "--port", str(port)]  # fmt: skip
        web = Proc(args, {**env, "API_TOKENS": TOKEN}, st.tmp / "web.log",
                   "web service listening")  # fmt: skip
        web.start()
        try:
            procfile.start(st, env)
            waiter = Waiter(st.r)
            warm = _batch(st, warmup, rng, waiter)
            history = int(st.r.llen(SAMPLES_KEY))
            ids = _batch(st, n, rng, waiter)
            waiter.close()
            at_sandbox = {j["_id"]: j for j in st.sandbox.jobs()}
            hooks = st.sandbox.stats()
            rows: list[tuple[int, float, bool] | None] = []
            for job_id in warm + ids:
                h = st.r.hgetall(f"akool-audio:job:{job_id}")
                events = [e for e in st.r.lrange(f"akool-audio:events:{job_id}", 0, -1)
                          if '"type":"webhook"' in e]  # fmt: skip
                sb = at_sandbox.get(h.get("akool_id", ""))
                if not sb or not h.get("detected_at") or not sb.get("completed_at"):
                    rows.append(None)
                    continue
                delay = float(h["detected_at"]) - sb["completed_at"]
                rows.append((int(h.get("polls", 0)), delay, bool(events)))
        finally:
            web.stop()
    learned, cold = rows[warmup:], rows[:warmup]
    got = [r for r in learned if r is not None]
    cold_got = [r for r in cold if r is not None]
    return {
        "warmup_jobs": warmup,
        "jobs": n,
        "measured": len(got),
        "history_after_warmup": history,
        "by_webhook": sum(r[2] for r in got),
        "polls_median": pct([float(r[0]) for r in got], 0.5),
        "polls_p95": pct([float(r[0]) for r in got], 0.95),
        "polls_mean": round(sum(r[0] for r in got) / max(1, len(got)), 2),
        "delay_median_s": round(pct([r[1] for r in got], 0.5), 3),
        "delay_p95_s": round(pct([r[1] for r in got], 0.95), 3),
        "warmup_polls_median": pct([float(r[0]) for r in cold_got], 0.5),
        "sandbox_webhooks": hooks.get("webhooks"),
        "web": "akool-audio web (API_TOKENS set)",
    }
