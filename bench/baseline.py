"""(3) Against the naive baseline: the same worker, the same jobs of about 10 s at the sandbox,
once as our pipeline and once as one task that sleeps and polls every 5 s."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from bench.engine import WorkerSpec
from bench.jobs import VOICE, Waiter, send_many, text_of
from bench.stack import Stack

LIFECYCLE = {"mode": "duration", "base_seconds": 10.0, "per_word_seconds": 0.0, "jitter": 0.1}


def _run(spec: WorkerSpec, n: int, naive: bool) -> dict[str, Any]:
    rng = random.Random(6)
    with Stack("baseline") as st:
        st.sandbox.configure(lifecycle=LIFECYCLE, seed=6)
        if naive:
            st.worker(app="bench.naive", queues="audio", pool=spec.pool,
                      concurrency=spec.concurrency)  # fmt: skip
        else:
            st.worker(pool=spec.pool, concurrency=spec.concurrency)
        waiter = Waiter(st.r)
        t0 = time.time()
        if naive:
            ids = [uuid.uuid4().hex for _ in range(n)]
            for job_id in ids:
                kwargs = {"job_id": job_id, "input_text": text_of(12, rng), "voice_id": VOICE}
                st.caller.send_task("bench.naive", kwargs=kwargs, queue="audio")
        else:
            ids = send_many(st.caller, n, lambda i: text_of(12, rng))
        done = waiter.wait(ids, timeout=120 + n * 15 / spec.concurrency)
        t_end = max(done.values()) if done else time.time()
        api = st.sandbox.stats()["requests"]
        waiter.close()
    finished = max(1, len(done))
    return {
        "jobs": n,
        "finished": len(done),
        "seconds": round(t_end - t0, 1),
        "jobs_per_s": round(len(done) / (t_end - t0), 3),
        "api_calls_per_job": round(sum(api.values()) / finished, 2),
        "polls_per_job": round(api.get("detail", 0) / finished, 2),
    }


def compare(spec: WorkerSpec, n_ours: int, n_naive: int) -> dict[str, Any]:
    ours = _run(spec, n_ours, naive=False)
    naive = _run(spec, n_naive, naive=True)
    return {
        "ours": ours,
        "naive": naive,
        "throughput_ratio": round(ours["jobs_per_s"] / max(1e-9, naive["jobs_per_s"]), 1),
    }
