"""A reliability run: the whole system on loopback, a batch of jobs, faults, and the figures.

Used by ``tests/chaos`` (full size) and ``tests/integration/test_reliability.py`` (reduced).
Everything is real: a redis-server with AOF, the sandbox over HTTP, ``celery worker`` processes.
Figures come from the job records in Redis, the files on disk and the sandbox's own stats; they
are written as JSON and rendered into docs/RELIABILITY.md by ``tests/chaos/report.py``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from sandbox import VOICES, SandboxServer
from tests.support.procs import CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import beat
from tests.support.stack import caller_app
from tests.support.tcpproxy import TcpProxy

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)
PREFIX = "akool-audio"
FINAL = ("succeeded", "failed")

# The shortest timings the settings accept (VISIBILITY_TIMEOUT > POLL_MAX_DELAY +
# TASK_TIME_LIMIT + 120), so that messages stranded by a crash or a lost connection come back
# as soon as the system allows. AKOOL_READ_TIMEOUT 3 s: the `slow` fault waits longer.
CHAOS_ENV = {
    "POLL_INITIAL_DELAY": "0.3",
    "POLL_MAX_DELAY": "2",
    "POLL_DEADLINE": "1200",
    "TASK_TIME_LIMIT": "10",
    "VISIBILITY_TIMEOUT": "133",
    "AKOOL_READ_TIMEOUT": "3",
    "AKOOL_CONNECT_TIMEOUT": "2",
    "TRANSIENT_ERROR_BUDGET": "30",
    # The sweeper runs from beat, which these stacks do not start; the settings still require
    # VISIBILITY_TIMEOUT > SWEEP_GRACE + TASK_TIME_LIMIT + 120.
    "SWEEP_GRACE": "3",
    "AKOOL_RATE_LIMIT": "100",
    "AKOOL_RATE_BURST": "20",
}


@dataclass
class Figures:
    """What one run measured; every number is counted, not estimated."""

    scenario: str
    fault: str
    load: str
    jobs: int = 0
    final: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    sha_mismatch: int = 0
    duplicates: int = 0
    ambiguous_submits: int = 0
    submissions: int = 0
    akool_calls: dict[str, int] = field(default_factory=dict)
    api_calls_per_job: float = 0.0
    faults_fired: dict[str, int] = field(default_factory=dict)
    failure_codes: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    worker_exits: int = 0  # "Unrecoverable error" in worker logs: a worker stopped by itself
    events: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Stack:
    """Redis (AOF), the sandbox, workers and a caller app, in ``workdir``."""

    def __init__(self, workdir: Path, *, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir / "redis", aof=True).start()
        self.sandbox = SandboxServer(port=0).start()
        self.audio_dir = workdir / "audio"
        self.extra_env = {**CHAOS_ENV, **(env or {})}
        self.workers: dict[str, CeleryWorker] = {}
        self.proxies: list[TcpProxy] = []
        self.beats: list[Proc] = []
        self.caller: Celery = caller_app(self.redis.url)
        self.t0 = time.monotonic()
        self.events: list[str] = []

    # -- processes ---------------------------------------------------------------------------

    def env(self, redis_url: str | None = None, **extra: str) -> dict[str, str]:
        return worker_env(
            redis_url or self.redis.url,
            self.sandbox.url,
            self.audio_dir,
            {**self.extra_env, **extra},
        )

    def worker(
        self,
        name: str,
        *,
        redis_url: str | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        env: Mapping[str, str] | None = None,
    ) -> CeleryWorker:
        w = CeleryWorker(
            {**self.env(redis_url), **(env or {})},
            self.workdir / "logs" / f"{name}.log",
            name=name,
            pool=pool,
            concurrency=concurrency,
        )
        self.workers[name] = w.start(timeout=60)
        return w

    def beat(self, **extra: str) -> Proc:
        """A beat (RedBeat) on the direct Redis URL: the sweeper, as in production."""
        b = beat(self.env(**extra), self.workdir / "logs" / f"beat{len(self.beats)}.log")
        self.beats.append(b.start(timeout=60))
        return b

    def sweeps(self) -> dict[str, int]:
        """What the sweeper did so far: ``{action: jobs}`` from its running totals."""
        totals: dict[str, str] = self.client().hgetall(f"{PREFIX}:maintenance:totals")  # type: ignore[assignment]
        return {k.split(".", 1)[1]: int(v) for k, v in totals.items() if k.startswith("sweep.")}

    def proxy(self) -> TcpProxy:
        p = TcpProxy(self.redis.port).start()
        self.proxies.append(p)
        return p

    def note(self, event: str) -> None:
        self.events.append(f"t={time.monotonic() - self.t0:.1f}s {event}")

    def restart_redis(self, *, kill: bool = False, down_seconds: float = 1.0) -> None:
        """Stop redis-server (SIGTERM, or SIGKILL with ``kill``) and start it on the same port
        and AOF directory."""
        self.redis.stop(kill=kill)
        self.note(f"redis {'SIGKILLed' if kill else 'stopped'}")
        time.sleep(down_seconds)
        self.redis.start()
        self.note("redis restarted")

    def stop(self) -> None:
        for b in self.beats:
            b.stop()
        for w in self.workers.values():
            w.stop()
        for p in self.proxies:
            p.stop()
        self.caller.close()
        self.sandbox.stop()
        self.redis.stop()

    def logs(self) -> str:
        return "\n".join(w.text() for w in self.workers.values())

    # -- jobs --------------------------------------------------------------------------------

    def client(self) -> redis.Redis:
        return self.redis.client()

    def enqueue(self, n: int, tag: str, **kwargs: Any) -> list[str]:
        """Send ``n`` audio.create jobs, each with its own job id and its own text (so the
        sandbox's ``creates_by_text`` counts submissions per job)."""
        run = uuid.uuid4().hex[:6]
        ids = [f"{tag}-{run}-{i:04d}" for i in range(n)]
        self.send(ids, **kwargs)
        return ids

    def send(self, job_ids: list[str], **kwargs: Any) -> None:
        """Send one audio.create per job id (see :meth:`enqueue`)."""
        for job_id in job_ids:
            self.caller.send_task(
                "audio.create",
                kwargs={
                    "input_text": f"Reliability run {job_id}: every job must finish once.",
                    "voice_id": VOICE,
                    "job_id": job_id,
                    **kwargs,
                },
                queue="audio",
            )

    def states(self, job_ids: list[str]) -> dict[str, str | None]:
        """job id -> state (None without a record); retried while Redis is down."""
        deadline = time.monotonic() + 60
        while True:
            try:
                r = self.client()
                pipe = r.pipeline(transaction=False)
                for j in job_ids:
                    pipe.hget(f"{PREFIX}:job:{j}", "state")
                got = pipe.execute()
                r.close()
                return dict(zip(job_ids, got, strict=True))
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def wait_final(
        self,
        job_ids: list[str],
        timeout: float,
        tick: Callable[[float, int], None] | None = None,
    ) -> float:
        """Wait until every job is final (or ``timeout``); ``tick(elapsed, final)`` runs about
        every half second so a scenario can inject faults. Returns the wall time."""
        start = time.monotonic()
        while True:
            elapsed = time.monotonic() - start
            done = sum(1 for s in self.states(job_ids).values() if s in FINAL)
            if done == len(job_ids) or elapsed > timeout:
                return elapsed
            if tick is not None:
                tick(elapsed, done)
            time.sleep(0.5)

    def measure(
        self, scenario: str, fault: str, load: str, job_ids: list[str], wall: float
    ) -> Figures:
        fig = Figures(scenario, fault, load, jobs=len(job_ids), wall_seconds=round(wall, 1))
        r = self.client()
        texts = set()
        codes: Counter[str] = Counter()
        for j in job_ids:
            h: dict[str, str] = r.hgetall(f"{PREFIX}:job:{j}")  # type: ignore[assignment]
            state = h.get("state")
            if state not in FINAL:
                fig.lost += 1
                keep = (
                    "state",
                    "akool_id",
                    "akool_status",
                    "submit_attempts",
                    "polls",
                    "transient_errors",
                    "submit_inflight",
                    "ambiguous_submits",
                )
                fig.notes.append(
                    f"lost {j}: "
                    + (json.dumps({k: h.get(k) for k in keep}) if h else "no job record")
                )
                continue
            fig.final += 1
            texts.add(json.loads(h["request"])["input_text"])
            fig.ambiguous_submits += int(h.get("ambiguous_submits", 0))
            if state == "failed":
                fig.failed += 1
                codes[h.get("error_code", "?")] += 1
                continue
            fig.succeeded += 1
            data = Path(h["file"]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            expected = self.sandbox.job(h["akool_id"])["sha256"]
            if not (digest == h["sha256"] == expected):
                fig.sha_mismatch += 1
        r.close()
        stats = self.sandbox.stats()
        by_text: dict[str, int] = stats["creates_by_text"]
        fig.duplicates = sum(n - 1 for t, n in by_text.items() if n > 1 and t in texts)
        fig.submissions = int(stats["submissions"])
        fig.akool_calls = {k: int(v) for k, v in stats["requests"].items() if v}
        api = sum(v for k, v in fig.akool_calls.items() if k != "download")
        fig.api_calls_per_job = round(api / max(1, len(job_ids)), 2)
        fig.faults_fired = {k: int(v) for k, v in stats["faults_fired"].items() if v}
        fig.failure_codes = dict(codes)
        fig.events = list(self.events)
        fig.worker_exits = self.logs().count("Unrecoverable error")
        return fig


def write_figures(path: Path, figures: Figures) -> None:
    """Merge one scenario's figures into the JSON file at ``path`` (keyed by scenario)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[figures.scenario] = figures.as_dict()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
