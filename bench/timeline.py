"""(10) What the job timeline costs the pipeline: line 2's throughput measurement (the sandbox
finishing at create, one worker of the run's pool and concurrency) with the worker started from
a checkout of the code before the timeline (``base``, a commit: a git worktree of it is made
in the temporary directory and removed at the end) and from this tree, alternating base,
current, base, current... against one sandbox and a fresh Redis for each run.

The timeline is written inside the job scripts (``worker/lua/_job.lua``), so "without" is the
code before it; whatever else changed in the pipeline since that commit is in the comparison
too. Each run checks, before it starts the worker, which files the worker's environment
imports (``imports``), and counts the events the jobs' timelines hold afterwards (none at a
base without the timeline).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from bench.engine import WorkerSpec
from bench.jobs import Waiter, send_many, text_of
from bench.stack import BENCH_ENV, ROOT, Sandbox, Worker, caller_app, commandstats, delta
from worker.devstack.localredis import RedisServer
from worker.devstack.procs import worker_env

BASE = "0d3bedc"  # the last commit before the timeline (issue 12)
WORKTREE = Path(tempfile.gettempdir()) / "bench-base"
EVENTS_KEY = "akool-audio:events:{}"  # Settings.key("events", job_id) with the default prefix
PROBE = "import worker.jobs.store as m; print(m.__file__)"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()[:500]}")
    return done.stdout.strip()


def add_worktree(commit: str, path: Path = WORKTREE) -> str:
    """A detached git worktree of ``commit`` at ``path`` (this tree's files are not touched);
    returns the full commit id."""
    full = _git("rev-parse", "--verify", f"{commit}^{{commit}}")
    if path.exists():
        raise RuntimeError(f"{path} exists: remove it (git worktree remove --force {path})")
    _git("worktree", "add", "--detach", str(path), full)
    return full


def remove_worktree(path: Path = WORKTREE) -> None:
    _git("worktree", "remove", "--force", str(path))


def imported_from(env: dict[str, str], root: Path) -> str:
    """The job store module a process with ``env`` in ``root`` imports (as the worker would)."""
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=root, env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"cannot import the code at {root}: {done.stderr[-1000:]}")
    return done.stdout.strip()


def measure(sandbox: Sandbox, root: Path, spec: WorkerSpec, n: int, tmp: Path) -> dict[str, Any]:
    """Jobs/s of ``n`` jobs through one worker running the code at ``root``, on a fresh Redis."""
    sandbox.reset()
    sandbox.configure(lifecycle={"mode": "immediate"})
    server = RedisServer(tmp / "redis").start()
    r = redis.Redis.from_url(server.url, decode_responses=True)
    caller = caller_app(server.url)
    env = worker_env(server.url, sandbox.url, tmp / "audio", {**BENCH_ENV, "PYTHONPATH": str(root)})
    imports = imported_from(env, root)
    if not Path(imports).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"the worker for {root} would import {imports}")
    w = Worker(env, tmp / "worker.log", pool=spec.pool, concurrency=spec.concurrency, cwd=root)
    try:
        w.start()
        waiter = Waiter(r)
        before = commandstats(r)
        t0 = time.time()
        ids = send_many(caller, n, lambda i: text_of(12))
        done = waiter.wait(ids, timeout=60 + n / 2)
        t_end = max(done.values()) if done else time.time()
        cmds = delta(commandstats(r), before)
        waiter.close()
        pipe = r.pipeline(transaction=False)
        for job_id in done:
            pipe.llen(EVENTS_KEY.format(job_id))
        events = sum(int(x) for x in pipe.execute())
    finally:
        w.stop()
        caller.close()
        r.close()
        server.stop()
    cmds.pop("subscribe", None)
    finished = max(1, len(done))
    return {
        "imports": imports,
        "finished": len(done),
        "seconds": round(t_end - t0, 2),
        "jobs_per_s": round(len(done) / (t_end - t0), 2),
        "redis_cmds_per_job": round(sum(cmds.values()) / finished, 1),
        "tasks_per_job": round(cmds.get("lpush", 0) / finished, 2),
        "events_per_job": round(events / finished, 2),
        "cmds_per_job": {k: v / finished for k, v in cmds.items()},
    }


def compare(spec: WorkerSpec, n: int, rounds: int, base: Path) -> dict[str, Any]:
    """Base and current alternating, ``rounds`` times each, against one sandbox."""
    tmp = Path(tempfile.mkdtemp(prefix="akool-bench-timeline-"))
    sandbox = Sandbox(tmp / "sandbox.log").start()
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "current": []}
    try:
        for k in range(rounds):
            for side, root in (("base", base), ("current", ROOT)):
                runs[side].append(measure(sandbox, root, spec, n, tmp / f"{side}{k}"))
    finally:
        sandbox.stop()
    shutil.rmtree(tmp, ignore_errors=True)  # kept when a run failed, with its logs
    out: dict[str, Any] = {"jobs": n, "rounds": rounds, "worker": spec.label()}
    for side, rs in runs.items():
        out[side] = {
            "imports": rs[0]["imports"],
            "jobs_per_s_runs": [r["jobs_per_s"] for r in rs],
            "jobs_per_s": round(statistics.mean(r["jobs_per_s"] for r in rs), 2),
            "finished": sum(r["finished"] for r in rs),
            **{k: round(statistics.mean(r[k] for r in rs), 2)
               for k in ("redis_cmds_per_job", "tasks_per_job", "events_per_job")},
        }  # fmt: skip
    # Which Redis commands a job of the current tree runs more (or fewer) of than at the base.
    more = {
        k: round(statistics.mean(r["cmds_per_job"].get(k, 0.0) for r in runs["current"])
                 - statistics.mean(r["cmds_per_job"].get(k, 0.0) for r in runs["base"]), 2)
        for k in {k for r in runs["base"] + runs["current"] for k in r["cmds_per_job"]}
    }  # fmt: skip
    out["cmds_more_per_job"] = dict(
        sorted(((k, v) for k, v in more.items() if v), key=lambda kv: -abs(kv[1]))[:12]
    )
    out["ratio"] = round(out["current"]["jobs_per_s"] / out["base"]["jobs_per_s"], 3)
    out["ratio_rounds"] = [
        round(c["jobs_per_s"] / b["jobs_per_s"], 3)
        for b, c in zip(runs["base"], runs["current"], strict=True)
    ]
    return out


def run(spec: WorkerSpec, n: int, rounds: int, base: str = BASE) -> dict[str, Any] | str:
    """The comparison against commit ``base``; a sentence instead when it cannot be checked out
    (no git, or not a clone that has the commit)."""
    try:
        full = add_worktree(base)
    except (OSError, RuntimeError) as exc:
        return f"not measured: no checkout of {base} ({exc})"
    try:
        return {"base_commit": full[:12], **compare(spec, n, rounds, WORKTREE)}
    finally:
        remove_worktree()
