"""The Procfile's worker processes, as the benchmarks start them: each ``celery -A worker
worker`` line (``worker``: entry, download and notify work; ``poller``: polls) with its own
queues, pool and concurrency, read from the Procfile so the figures follow the shipped layout."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.stack import ROOT, Stack, Worker, process_tree

#: kombu's set of live consumers that the heartbeat thread writes once a worker is ready
#: (worker/broker/heartbeat.py), with the transport's default key names.
CONSUMERS = "unacked:consumers"


@dataclass(frozen=True)
class Process:
    name: str
    queues: str
    pool: str
    concurrency: int

    def label(self) -> str:
        return f"{self.name}: -Q {self.queues} -P {self.pool} -c {self.concurrency}"


def layout() -> list[Process]:
    """Every Procfile line that runs ``celery -A worker worker``, in the file's order."""
    out = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if argv[:4] != ["celery", "-A", "worker", "worker"]:
            continue

        def opt(flag: str, default: str, argv: list[str] = argv) -> str:
            return argv[argv.index(flag) + 1] if flag in argv else default

        out.append(Process(name.strip(), opt("-Q", "celery"), opt("-P", "prefork"),
                           int(opt("-c", "1"))))  # fmt: skip
    if not out:
        raise RuntimeError("the Procfile runs no celery worker")
    return out


def start(
    st: Stack,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    scale: Mapping[str, int] | None = None,
) -> dict[str, Worker]:
    """Start the Procfile's workers on ``st`` (its environment, or ``env``), from the tree at
    ``cwd`` (another commit's worktree: put it on PYTHONPATH too), ``scale[name]`` processes of
    a line (``honcho start -c poller=2``; default 1); returns them by name (``poller``,
    ``poller2``, ...) once each has written its heartbeat (ready and consuming)."""
    workers = {}
    for p in layout():
        for i in range(1, (scale or {}).get(p.name, 1) + 1):
            name = p.name if i == 1 else f"{p.name}{i}"
            workers[name] = st.worker(env, queues=p.queues, pool=p.pool,
                                      concurrency=p.concurrency, name=name, cwd=cwd)  # fmt: skip
    wait_ready(st.r, len(workers))
    return workers


def wait_ready(r: redis.Redis, n: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while int(r.scard(CONSUMERS)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {r.scard(CONSUMERS)} of {n} workers wrote a heartbeat")
        time.sleep(0.2)


def rss(workers: Mapping[str, Worker]) -> dict[str, int]:
    """Resident bytes of each worker (its main process and any pool children)."""
    return {name: w.rss_bytes() for name, w in workers.items()}


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of ``pid`` and its children so far (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def cpu(st: Stack, workers: Mapping[str, Worker]) -> dict[str, float]:
    """CPU seconds so far of each worker, Redis (INFO cpu) and the sandbox."""
    info = st.r.info("cpu")
    out = {name: cpu_seconds(w.pid) for name, w in workers.items()}
    out["redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    out["sandbox"] = cpu_seconds(st.sandbox.pid)
    return out
