"""The parts every benchmark starts for itself: a private redis-server, the sandbox as a process,
real ``celery worker`` processes, and a bare caller app that imports none of our code."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis
import requests
from celery import Celery

from worker.devstack.localredis import RedisServer
from worker.devstack.procs import QUIET, CeleryWorker, Proc, worker_env
from worker.devstack.procs import ROOT as ROOT  # bench's modules run commands from here

API_KEY = "sandbox-api-key-0123456789abcdef"  # sandbox.DEFAULT_API_KEY, which worker_env sets
# Production defaults except what a loopback benchmark needs: the sandbox has no rate limit of
# its own, so ours is set out of the way (a real Akool account caps every figure here).
BENCH_ENV = {"AKOOL_RATE_LIMIT": "100000", "AKOOL_RATE_BURST": "100000"}


class Sandbox(Proc):
    """``python -m sandbox`` in its own process, steered through its admin endpoints."""

    def __init__(self, log: Path) -> None:
        args = [sys.executable, "-m", "sandbox", "--port", "0"]
        # The sandbox takes AKOOL_* credentials from its environment: the benchmark's workers
        # send the default key, so the shell's must not reach it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AKOOL_")}
        super().__init__(args, env, log, "listening on")
        self.url = ""
        self.http = requests.Session()

    def start(self, timeout: float = 30.0) -> Self:
        super().start(timeout)
        self.url = self.text()[self.offset :].split("listening on", 1)[1].split()[0]
        return self

    def _admin(self, path: str, body: Any = None) -> Any:
        url = f"{self.url}/_sandbox/{path}"
        resp = self.http.post(url, json=body) if body is not None else self.http.get(url)
        resp.raise_for_status()
        return resp.json()

    def configure(self, **fields: Any) -> Any:
        return self._admin("config", fields)

    def reset(self) -> None:
        self.http.post(f"{self.url}/_sandbox/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        return dict(self._admin("stats"))

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._admin("jobs"))


class Worker(CeleryWorker):
    """``celery -A APP worker`` at WARNING, which prints no "ready." line: ready once its
    control mailbox exists in Redis. ``extra``: more command-line options; ``kwargs``: app,
    queues, pool as in ``CeleryWorker``."""

    def __init__(
        self,
        env: Mapping[str, str],
        log: Path,
        *,
        concurrency: int = 4,
        name: str = "bench",
        extra: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        options = (*QUIET, *extra)
        super().__init__(
            env, log, concurrency=concurrency, name=name, loglevel="WARNING", options=options,
            **kwargs,
        )  # fmt: skip

    def start(self, timeout: float = 60.0) -> Self:
        super().start(timeout)
        r = redis.Redis.from_url(self.env["REDIS_URL"])
        deadline = time.monotonic() + timeout
        while not r.keys("_kombu.binding.*pidbox*"):
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        r.close()
        time.sleep(0.5)  # the pool's children finish importing
        return self

    def rss_bytes(self) -> int:
        """Resident memory of the worker and all its pool children."""
        return sum(rss_bytes(pid) for pid in process_tree(self.pid))


def process_tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                children = Path(f"/proc/{p}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    return out


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def caller_app(redis_url: str) -> Celery:
    app = Celery("bench-caller", broker=redis_url, backend=redis_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        result_serializer="json",
    )
    return app


def commandstats(r: redis.Redis) -> dict[str, int]:
    stats = r.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0) > 0}


class Stack:
    """Redis + sandbox + workers for one benchmark; everything is stopped on exit."""

    def __init__(self, name: str, keep: bool = False) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"akool-bench-{name}-"))
        self.keep = keep
        self.redis_server = RedisServer(self.tmp / "redis")
        self.sandbox = Sandbox(self.tmp / "sandbox.log")
        self.workers: list[Worker] = []
        self.audio_dir = self.tmp / "audio"

    def __enter__(self) -> Stack:
        self.redis_server.start()
        self.sandbox.start()
        self.r = redis.Redis.from_url(self.redis_server.url, decode_responses=True)
        self.caller = caller_app(self.redis_server.url)
        return self

    def env(self, **extra: str) -> dict[str, str]:
        url = self.redis_server.url
        return worker_env(url, self.sandbox.url, self.audio_dir, {**BENCH_ENV, **extra})

    def worker(self, env: Mapping[str, str] | None = None, **kwargs: Any) -> Worker:
        w = Worker(env or self.env(), self.tmp / f"worker{len(self.workers)}.log", **kwargs)
        self.workers.append(w)
        return w.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        for w in self.workers:
            w.stop()
        self.caller.close()
        self.sandbox.stop()
        self.redis_server.stop()
        if not self.keep and et is None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
