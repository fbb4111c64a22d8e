"""(13) Pipeline efficiency before and after issue 14, in one run: line 1's ceiling (no-op
tasks, ``celery -A bench.noop``, the tree's own Celery settings) and line 2's throughput (jobs
the sandbox finishes at create, one worker of the run's pool and concurrency on every queue),
each measured with the worker started from a git worktree of ``BASE`` (the commit before,
``--efficiency-base``) and from this tree, alternating base, current, base, current, on a fresh
Redis each run and one sandbox (bench/timeline.py's approach and its ``measure``).

Efficiency = jobs/s / (ceiling / tasks per job), each side with its own ceiling: the no-op
tasks run with the same Celery settings as that side's pipeline (issue 14 turned off STARTED
results and sent events, which makes the no-op faster too). Redis commands per job come from
``INFO commandstats`` (commands inside Lua scripts count).
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench import timeline
from bench.engine import WorkerSpec
from bench.stack import BENCH_ENV, ROOT, Sandbox, Worker, caller_app, commandstats, delta
from worker.devstack.localredis import RedisServer
from worker.devstack.procs import worker_env

BASE = "23c39bd"  # the last commit before issue 14
WORKTREE = Path(tempfile.gettempdir()) / "bench-base14"


def ceiling_at(sandbox: Sandbox, root: Path, spec: WorkerSpec, n: int, tmp: Path) -> dict[str, Any]:
    """No-op tasks/s of ``celery -A bench.noop`` run from ``root`` (engine.ceiling's way)."""
    server = RedisServer(tmp / "redis").start()
    r = redis.Redis.from_url(server.url, decode_responses=True)
    caller = caller_app(server.url)
    env = worker_env(server.url, sandbox.url, tmp / "audio", {**BENCH_ENV, "PYTHONPATH": str(root)})
    w = Worker(env, tmp / "noop.log", app="bench.noop", queues="audio", pool=spec.pool,
               concurrency=spec.concurrency, cwd=root)  # fmt: skip
    try:
        w.start()
        before = commandstats(r)
        t0 = time.time()
        for _ in range(n):
            caller.send_task("bench.noop", queue="audio")
        own = 0
        while r.llen("audio") or r.hlen("unacked"):
            own += 1
            time.sleep(0.01)
        elapsed = time.time() - t0
        cmds = delta(commandstats(r), before)
        cmds["llen"] = cmds.get("llen", 0) - own
        cmds["hlen"] = cmds.get("hlen", 0) - own
    finally:
        w.stop()
        caller.close()
        r.close()
        server.stop()
    return {
        "tasks_per_s": round(n / elapsed, 1),
        "redis_cmds_per_task": round(sum(cmds.values()) / n, 1),
    }


def compare(spec: WorkerSpec, n_noop: int, n_jobs: int, rounds: int, base: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="akool-bench-efficiency-"))
    sandbox = Sandbox(tmp / "sandbox.log").start()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        side: {"ceiling": [], "pipeline": []} for side in ("base", "current")
    }
    try:
        for k in range(rounds):
            for side, root in (("base", base), ("current", ROOT)):
                d = tmp / f"{side}{k}"
                runs[side]["ceiling"].append(ceiling_at(sandbox, root, spec, n_noop, d / "noop"))
                runs[side]["pipeline"].append(timeline.measure(sandbox, root, spec, n_jobs, d))
    finally:
        sandbox.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    out: dict[str, Any] = {"rounds": rounds, "noop_tasks": n_noop, "jobs": n_jobs,
                           "worker": spec.label()}  # fmt: skip
    for side, r in runs.items():
        ceiling = statistics.mean(c["tasks_per_s"] for c in r["ceiling"])
        jobs_s = statistics.mean(p["jobs_per_s"] for p in r["pipeline"])
        tasks = statistics.mean(p["tasks_per_job"] for p in r["pipeline"])
        cmds = {k: round(statistics.mean(p["cmds_per_job"].get(k, 0.0) for p in r["pipeline"]), 2)
                for k in {k for p in r["pipeline"] for k in p["cmds_per_job"]}}  # fmt: skip
        out[side] = {
            "imports": r["pipeline"][0]["imports"],
            "ceiling_tasks_per_s": round(ceiling, 1),
            "ceiling_runs": [c["tasks_per_s"] for c in r["ceiling"]],
            "redis_cmds_per_noop_task": statistics.mean(
                c["redis_cmds_per_task"] for c in r["ceiling"]
            ),
            "jobs_per_s": round(jobs_s, 2),
            "jobs_per_s_runs": [p["jobs_per_s"] for p in r["pipeline"]],
            "finished": sum(p["finished"] for p in r["pipeline"]),
            "tasks_per_job": round(tasks, 2),
            "redis_cmds_per_job": round(
                statistics.mean(p["redis_cmds_per_job"] for p in r["pipeline"]), 1
            ),
            "redis_top": dict(sorted(cmds.items(), key=lambda kv: -kv[1])[:10]),
            "efficiency": round(jobs_s / (ceiling / tasks), 3),
        }
    b, c = out["base"], out["current"]
    # The current pipeline against the base's engine: what the fewer tasks and writes gained
    # without the cheaper no-op in the denominator.
    out["current_efficiency_at_base_ceiling"] = round(
        c["jobs_per_s"] / (b["ceiling_tasks_per_s"] / c["tasks_per_job"]), 3
    )
    out["jobs_per_s_ratio"] = round(c["jobs_per_s"] / b["jobs_per_s"], 3)
    return out


def run(
    spec: WorkerSpec, n_noop: int, n_jobs: int, rounds: int, base: str = BASE
) -> dict[str, Any] | str:
    try:
        full = timeline.add_worktree(base, WORKTREE)
    except (OSError, RuntimeError) as exc:
        return f"not measured: no checkout of {base} ({exc})"
    try:
        return {"base_commit": full[:12], **compare(spec, n_noop, n_jobs, rounds, WORKTREE)}
    finally:
        timeline.remove_worktree(WORKTREE)
