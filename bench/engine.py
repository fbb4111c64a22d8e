"""(1) the engine's ceiling, (2) pipeline throughput with the sandbox finishing at once, and
(7) the same throughput per pool. Each figure is taken on a fresh Redis and sandbox."""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass
from typing import Any

from bench.jobs import Waiter, send_many, text_of
from bench.stack import Stack, commandstats, delta


@dataclass(frozen=True)
class WorkerSpec:
    pool: str = "prefork"
    concurrency: int = 4

    def label(self) -> str:
        return f"{self.pool} x{self.concurrency}"


def ceiling(spec: WorkerSpec, n: int) -> dict[str, Any]:
    """No-op tasks/s: all ``n`` sent first, then one worker drains them."""
    with Stack("ceiling") as st:
        w = st.worker(app="bench.noop", queues="audio", pool=spec.pool,
                      concurrency=spec.concurrency)  # fmt: skip
        queue = "audio"
        before = commandstats(st.r)
        t0 = time.time()
        for _ in range(n):
            st.caller.send_task("bench.noop", queue=queue)
        own = 0
        while st.r.llen(queue) or st.r.hlen("unacked"):
            own += 2
            time.sleep(0.01)
        elapsed = time.time() - t0
        cmds = delta(commandstats(st.r), before)
        cmds["llen"] = cmds.get("llen", 0) - own // 2
        cmds["hlen"] = cmds.get("hlen", 0) - own // 2
        rss = w.rss_bytes()
    return {
        "tasks": n,
        "seconds": round(elapsed, 2),
        "tasks_per_s": round(n / elapsed, 1),
        "redis_cmds_per_task": round(sum(cmds.values()) / n, 1),
        "worker_rss_mb": round(rss / 2**20, 1),
    }


def throughput(spec: WorkerSpec, n: int, latency: float = 0.0) -> dict[str, Any]:
    """Jobs/s end to end; ``latency`` > 0 makes every Akool call take that long (a ``slow``
    fault on create and detail) so the pools are compared on I/O-bound work."""
    with Stack("throughput") as st:
        st.sandbox.configure(lifecycle={"mode": "immediate"})
        if latency:
            st.sandbox.configure(faults=[
                {"endpoint": e, "kind": "slow", "delay": latency} for e in ("create", "detail")
            ])  # fmt: skip
        w = st.worker(pool=spec.pool, concurrency=spec.concurrency)
        waiter = Waiter(st.r)
        api_before = st.sandbox.stats()["requests"]
        before = commandstats(st.r)
        t0 = time.time()
        ids = send_many(st.caller, n, lambda i: text_of(12))
        done = waiter.wait(ids, timeout=60 + n / 2)
        t_end = max(done.values()) if done else time.time()
        cmds = delta(commandstats(st.r), before)
        rss = w.rss_bytes()
        api = st.sandbox.stats()["requests"]
        waiter.close()
    finished = len(done)
    cmds.pop("subscribe", None)
    return {
        "jobs": n,
        "finished": finished,
        "seconds": round(t_end - t0, 2),
        "jobs_per_s": round(finished / (t_end - t0), 2),
        "tasks_per_job": round(cmds.get("lpush", 0) / max(1, finished), 2),
        "redis_cmds_per_job": round(sum(cmds.values()) / max(1, finished), 1),
        "redis_top": dict(sorted(cmds.items(), key=lambda kv: -kv[1])[:8]),
        "api_calls_per_job": round(
            (sum(api.values()) - sum(api_before.values())) / max(1, finished), 2
        ),
        "worker_rss_mb": round(rss / 2**20, 1),
    }


POOLS = (
    WorkerSpec("prefork", 4),
    WorkerSpec("prefork", 16),
    WorkerSpec("threads", 16),
    WorkerSpec("gevent", 16),
    WorkerSpec("threads", 64),
    WorkerSpec("gevent", 64),
)


def pools(n: int, latency: float) -> dict[str, Any]:
    """Throughput per pool when every Akool call takes ``latency`` s (I/O-bound, as for real)."""
    out: dict[str, Any] = {"latency_s": latency}
    for spec in POOLS:
        if spec.pool == "gevent" and importlib.util.find_spec("gevent") is None:
            out[spec.label()] = "not measured: gevent is not installed (pip install .[gevent])"
            continue
        r = throughput(spec, n, latency=latency)
        out[spec.label()] = {k: r[k] for k in ("jobs_per_s", "worker_rss_mb", "finished")}
    return out
