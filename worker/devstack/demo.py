"""``make demo``: the whole system on this machine, then everything shut down again.

A private redis-server on a free loopback port, the sandbox in this process, one
``celery worker`` process, the web service (the dashboard) on a free port of 127.0.0.1, and
``batch`` on the bundled sample of 20 requests, Akool's Audio API (v3) and VoiceLab (v4) side by
side (v4 creates, and two v4 clones of one sample: one voice cloned, then reused). The dashboard's
address and a token made for this run (printed once, never written anywhere) stay on screen
while the batch runs;
``keep_running`` (``akool-audio demo --keep-running``) leaves it all up afterwards, until Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from config.settings import get_settings
from sandbox import SandboxServer
from worker.akool.audiorequest import api_of
from worker.akool.speech import APIS
from worker.celery import app
from worker.cli import batch
from worker.devstack.localredis import RedisServer, free_port
from worker.devstack.procs import CeleryWorker, Proc, worker_env
from worker.services import reachable_job_store

SAMPLE = Path(__file__).with_name("samples") / "demo.jsonl"
DEMO_ENV = {"POLL_INITIAL_DELAY": "1", "POLL_MAX_DELAY": "5"}


def _worker(env: dict[str, str], log: Path, concurrency: int) -> CeleryWorker:
    """The Procfile's pool (threads: see docs/PERFORMANCE.md, pools), as ``python -m celery``
    from the current directory, so that it runs wherever ``akool-audio`` is installed."""
    return CeleryWorker(
        env, log, name="demo", pool="threads", concurrency=concurrency, options=(),
        celery=(sys.executable, "-m", "celery"), cwd=None,
    )  # fmt: skip


def _web(env: dict[str, str], log: Path) -> Proc:
    """``akool-audio web`` on 127.0.0.1 (the development server), as ``python -m``."""
    args = [sys.executable, "-m", "worker.cli.main", "web", "--host", "127.0.0.1"]
    return Proc([*args, "--port", env["WEB_PORT"]], env, log, "web service listening", cwd=None)


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _wait_for_ctrl_c(url: str) -> None:
    print(
        f"\nThe demo keeps running: the dashboard is at {url} (the token above).\n"
        "Press Ctrl-C to stop the web service, the worker, the sandbox and Redis.",
        file=sys.stderr,
        flush=True,
    )
    previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(keep: bool = False, workers: int = 16, keep_running: bool = False) -> int:
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
    worker = web = None
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
        # The dashboard: loopback only, with a token made for this run alone.
        token = secrets.token_urlsafe(24)
        web_env = {"API_TOKENS": token, "API_AUTH": "on", "WEB_PORT": str(free_port())}
        env = worker_env(
            redis_server.url, sandbox.url, audio_dir, {**DEMO_ENV, **web_env}, keep_shell=True
        )
        env.pop("API_TOKENS_FILE", None)
        os.environ.update(env)
        get_settings.cache_clear()
        worker = _worker(env, tmp / "worker.log", workers)
        worker.start(timeout=60)  # stopped below even when it does not come up
        print(f"worker          pid {worker.pid}, log {worker.log}", file=sys.stderr)
        web = _web(env, tmp / "web.log").start(timeout=60)
        url = f"http://127.0.0.1:{env['WEB_PORT']}/"
        print(
            f"dashboard       {url}\n"
            f"  log in with   {token}\n"
            "                (a token made for this run only; the service listens on "
            "127.0.0.1 only)\n",
            file=sys.stderr,
            flush=True,
        )
        batch_file = tmp / "demo.jsonl"
        batch_file.write_text(SAMPLE.read_text().replace("{SANDBOX}", sandbox.url))
        outcome = _batch(batch_file, sandbox.stats)
        if keep_running:
            _wait_for_ctrl_c(url)
        return outcome
    finally:
        if web is not None:
            web.stop(timeout=10)
        if worker is not None:
            worker.stop(timeout=30)
        sandbox.stop()
        redis_server.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        print("stopped the web service, the worker, the sandbox and Redis", file=sys.stderr)


def _batch(path: Path, sandbox_stats: Callable[[], dict[str, Any]]) -> int:
    items = batch.load(path)
    outcome = batch.run(
        lambda name, kw: app.send_task(name, kwargs=kw), reachable_job_store(), items, timeout=300
    )
    batch.show(outcome.records)
    stats = sandbox_stats()
    expected = {i.kwargs["job_id"] for i in items if "[[fail]]" in i.kwargs["input_text"]}
    failed = {j.job_id for j in outcome.failed}
    # The sample's VoiceLab (v4) jobs: those of an API whose clones make a voice first.
    v4 = [i for i in items if APIS[api_of(i.kwargs)].cloner is not None]
    v4_clones = sum(1 for i in v4 if i.task == "audio.clone")
    credits = sum(j.credits or 0.0 for j in outcome.records if APIS[j.api].reports_credits)
    polls = sum(stats["requests"].get(api.poll_endpoint, 0) for api in APIS.values())
    print(
        f"\n{len(outcome.succeeded)} succeeded, {len(failed)} failed "
        f"({len(expected)} on purpose); the sandbox saw {stats['submissions']} submissions "
        f"and {polls} polls for {len(items)} requests ({len(v4)} of them VoiceLab v4, "
        f"{credits:.4f} credits; {v4_clones} v4 clone jobs needed {stats.get('clones', 0)} "
        "cloned voice)."
    )
    ok = outcome.finished and not outcome.missing and not outcome.cancelled and failed == expected
    if not ok:
        print("demo FAILED: not every job ended as expected", file=sys.stderr)
    return 0 if ok else 1
