"""``make demo``: the whole system on this machine, then everything shut down again.

A private redis-server on a free loopback port, the sandbox in this process, one
``celery worker`` process, and ``batch`` on the bundled sample of 20 requests.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.devstack.localredis import RedisServer
from worker.devstack.procs import CeleryWorker, worker_env

SAMPLE = Path(__file__).with_name("samples") / "demo.jsonl"
DEMO_ENV = {"POLL_INITIAL_DELAY": "1", "POLL_MAX_DELAY": "5"}


def _worker(env: dict[str, str], log: Path, concurrency: int) -> CeleryWorker:
    """The Procfile's pool (threads: see docs/PERFORMANCE.md, pools), as ``python -m celery``
    from the current directory, so that it runs wherever ``akool-audio`` is installed."""
    return CeleryWorker(
        env, log, name="demo", pool="threads", concurrency=concurrency, options=(),
        celery=(sys.executable, "-m", "celery"), cwd=None,
    )  # fmt: skip


def run(keep: bool = False, workers: int = 16) -> int:
    from sandbox import SandboxServer

    if shutil.which("redis-server") is None:
        print(
            "redis-server is not installed. Install it with `apt-get install redis-server` "
            "(Debian/Ubuntu) or `brew install redis`, or run `make demo`, which installs it "
            "when it runs as root.",
            file=sys.stderr,
        )
        return 3
    tmp = Path(tempfile.mkdtemp(prefix="akool-audio-demo-"))
    audio_dir = Path("audio/demo").resolve()
    worker = None
    redis_server = RedisServer(tmp / "redis")
    sandbox = SandboxServer(port=0)
    try:
        redis_server.start()
        sandbox.start()
        sandbox.configure(
            lifecycle={
                "mode": "duration",
                "base_seconds": 1.5,
                "per_word_seconds": 0.08,
                "jitter": 0.3,
            }
        )
        print(
            f"private Redis   {redis_server.url}\nAkool sandbox   {sandbox.url}\n"
            f"audio files     {audio_dir}",
            file=sys.stderr,
        )
        env = worker_env(redis_server.url, sandbox.url, audio_dir, DEMO_ENV, keep_shell=True)
        os.environ.update(env)
        from config.settings import get_settings

        get_settings.cache_clear()
        worker = _worker(env, tmp / "worker.log", workers)
        worker.start(timeout=60)  # stopped below even when it does not come up
        print(f"worker          pid {worker.pid}, log {worker.log}\n", file=sys.stderr)
        batch_file = tmp / "demo.jsonl"
        batch_file.write_text(SAMPLE.read_text().replace("{SANDBOX}", sandbox.url))
        return _batch(batch_file, sandbox.stats)
    finally:
        if worker is not None:
            worker.stop(timeout=30)
        sandbox.stop()
        redis_server.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        print("stopped the worker, the sandbox and Redis", file=sys.stderr)


def _batch(path: Path, sandbox_stats: Callable[[], dict[str, Any]]) -> int:
    from worker.celery import app
    from worker.cli import batch
    from worker.services import reachable_job_store

    items = batch.load(path)
    outcome = batch.run(
        lambda name, kw: app.send_task(name, kwargs=kw), reachable_job_store(), items, timeout=300
    )
    batch.show(outcome.records)
    stats = sandbox_stats()
    expected = {i.kwargs["job_id"] for i in items if "[[fail]]" in i.kwargs["input_text"]}
    failed = {j.job_id for j in outcome.failed}
    print(
        f"\n{len(outcome.records) - len(failed)} succeeded, {len(failed)} failed "
        f"({len(expected)} on purpose); the sandbox saw {stats['submissions']} submissions "
        f"and {stats['requests']['detail']} polls for {len(items)} requests."
    )
    ok = outcome.finished and not outcome.missing and failed == expected
    if not ok:
        print("demo FAILED: not every job ended as expected", file=sys.stderr)
    return 0 if ok else 1
