"""(4) Polling efficiency: jobs that take about 13 s at the sandbox (lognormal, longer with more
words) arrive as a stream; per job, the polls it cost and how long after the sandbox finished
it we noticed. The first jobs meet no history (the estimator's cold start) and are reported
apart from the rest."""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.engine import WorkerSpec
from bench.jobs import Waiter, send_create, text_of
from bench.stack import API_KEY, ROOT, Stack
from worker.devstack.localredis import free_port

# 8 s + 25 ms a word: 13 s at 200 words, the middle of 20..380 words; factor lognormal(0, 0.25)
CLIENT_ID = "c2FuZGJveGNsaWVudGlkMQ=="  # sandbox.DEFAULT_CLIENT_ID
LIFECYCLE = {
    "mode": "duration",
    "base_seconds": 8.0,
    "per_word_seconds": 0.025,
    "lognormal_sigma": 0.25,
}


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _receiver(st: Stack) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """``akool-audio webhook`` on a free port; the workers then send it as ``webhookUrl``."""
    port = free_port()
    env = st.env(PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    # The receiver decrypts with the client secret and the clientId's first 16 bytes.
    keys = {"AKOOL_CLIENT_ID": CLIENT_ID, "AKOOL_CLIENT_SECRET": API_KEY}
    keys["API_TOKENS"] = "bench-api-token-0123456789"  # the web service refuses to start without
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("akool-audio")), "webhook", "--port", str(port)],
        cwd=ROOT, env={**env, **keys}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    if "listening" not in proc.stdout.readline():
        proc.kill()
        raise RuntimeError("the webhook receiver did not start")
    return proc, env


def run(
    spec: WorkerSpec, n: int, rate: float, warmup: int, webhooks: bool = False
) -> dict[str, Any]:
    rng = random.Random(4)
    with Stack("polling") as st:
        st.sandbox.configure(lifecycle=LIFECYCLE, seed=4)
        receiver, env = _receiver(st) if webhooks else (None, st.env())
        st.worker(env, pool=spec.pool, concurrency=spec.concurrency)
        waiter = Waiter(st.r)
        ids = []
        t0 = time.monotonic()
        for i in range(n):
            ids.append(send_create(st.caller, text_of(rng.randrange(20, 380), rng)))
            time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
        waiter.wait(ids, timeout=180)
        waiter.close()
        at_sandbox = {j["_id"]: j for j in st.sandbox.jobs()}
        rows = []
        for job_id in ids:
            h = st.r.hgetall(f"akool-audio:job:{job_id}")
            sb = at_sandbox.get(h.get("akool_id", ""))
            if not sb or not h.get("detected_at") or not sb.get("completed_at"):
                continue
            duration = sb["completed_at"] - sb["created_at"]
            delay = float(h["detected_at"]) - sb["completed_at"]
            rows.append((int(h.get("polls", 0)), delay, delay / duration, duration))
        if receiver is not None:
            receiver.terminate()
            receiver.wait(10)
    learned, cold = rows[warmup:], rows[:warmup]
    return {
        "jobs": n,
        "measured": len(learned),
        "duration_median_s": round(pct([r[3] for r in learned], 0.5), 2),
        "polls_median": pct([r[0] for r in learned], 0.5),
        "polls_p95": pct([r[0] for r in learned], 0.95),
        "delay_median_s": round(pct([r[1] for r in learned], 0.5), 2),
        "delay_p95_s": round(pct([r[1] for r in learned], 0.95), 2),
        "delay_share_median": round(pct([r[2] for r in learned], 0.5), 3),
        "cold_start": {
            "jobs": len(cold),
            "polls_median": pct([r[0] for r in cold], 0.5),
            "delay_share_median": round(pct([r[2] for r in cold], 0.5), 3),
        },
    }


def webhooks_available() -> bool:
    return importlib.util.find_spec("worker.web.webhook") is not None
