"""A reliability run: the whole system on loopback, a batch of jobs, faults, and the figures.

Used by ``tests/chaos`` (full size) and ``tests/integration/test_reliability.py`` (reduced).
Everything is real: a redis-server with AOF, the sandbox over HTTP, ``celery worker`` processes.
Figures come from the job records in Redis, the files on disk and the sandbox's own stats; they
are written as JSON and rendered into docs/RELIABILITY.md by ``tests/chaos/report.py``.

A scenario that keeps results on S3 starts moto's S3 server with :meth:`Stack.object_store`
(a process of its own) and puts a :class:`~tests.support.faultproxy.FaultProxy` from
:meth:`Stack.fault_proxy` between it and the workers; :meth:`Stack.measure` then reads each
result back from the bucket instead of the disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from celery import Celery

from config.settings import Settings
from sandbox import VOICES, SandboxServer
from tests.support.faultproxy import FaultProxy
from tests.support.procs import CeleryWorker, Proc, worker_env
from tests.support.redis import RedisServer
from tests.support.services import beat
from tests.support.stack import caller_app
from tests.support.tcpproxy import TcpProxy
from worker.devstack.s3server import MotoServer

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

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

# The settings' own defaults for every timing CHAOS_ENV shortens (VISIBILITY_TIMEOUT 900,
# POLL_* 2/30/900, ...): a run "with the default settings". Only Akool's rate limit stays
# raised: it sets the pace of the load, not how a fault is recovered from.
DEFAULT_ENV = {
    name: str(getattr(Settings, name.lower())) for name in CHAOS_ENV if "RATE" not in name
}


def non_defaults(env: Mapping[str, str]) -> dict[str, str]:
    """The numeric settings (timings, limits, rates) in ``env`` whose value is not the
    settings' default: what a run changed of "the default settings"."""
    out: dict[str, str] = {}
    for name, value in env.items():
        default = getattr(Settings, name.lower(), None)
        if isinstance(default, bool) or not isinstance(default, int | float):
            continue
        try:
            same = float(value) == float(default)
        except ValueError:
            same = False
        if not same:
            out[name] = value
    return out


# Made-up credentials for moto, for the workers' environment only: no profile or credentials
# file and no instance metadata, so boto3's chain finds these and nothing else.
S3_FAKE_KEY_ID, S3_FAKE_SECRET, S3_REGION = (
    "AKIAIOSFODNN7EXAMPLE",
    "chaos-secret-that-is-not-real-7d1e",
    "us-east-1",
)
S3_WORKER_ENV = {
    "AWS_ACCESS_KEY_ID": S3_FAKE_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": S3_FAKE_SECRET,
    "AWS_REGION": S3_REGION,
    "AWS_DEFAULT_REGION": S3_REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
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
    # What ran: every numeric setting any process had that is not the default (two processes
    # that differ: "a / b"), and the processes (Redis, workers with pool and concurrency, beat).
    settings: dict[str, str] = field(default_factory=dict)
    processes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ObjectStore:
    """moto's S3 server in a process of its own on a free loopback port, with one bucket.
    ``client`` talks to it directly, with the fake credentials passed in code (this process's
    environment stays without them); workers reach it through a FaultProxy
    (:meth:`worker_env`)."""

    def __init__(self, workdir: Path, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.staging_root = workdir / "tmp"  # the workers' TMPDIR: one host's staging directory
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.proc = MotoServer(env, workdir / "logs" / "moto.log")
        self.url = ""
        self.port = 0
        self._client: S3Client | None = None

    def start(self) -> ObjectStore:
        import boto3  # only the scenarios that keep results on S3 load boto3
        import botocore.session

        self.url = self.proc.start().url
        self.port = int(self.url.rsplit(":", 1)[1])
        core = botocore.session.Session()
        core.set_config_variable("config_file", S3_WORKER_ENV["AWS_CONFIG_FILE"])
        core.set_config_variable("credentials_file", S3_WORKER_ENV["AWS_SHARED_CREDENTIALS_FILE"])
        session = boto3.session.Session(
            aws_access_key_id=S3_FAKE_KEY_ID,
            aws_secret_access_key=S3_FAKE_SECRET,
            region_name=S3_REGION,
            botocore_session=core,
        )
        self._client = session.client("s3", endpoint_url=self.url)
        self._client.create_bucket(Bucket=self.bucket)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        return self

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("the object store is not started")
        return self._client

    def stop(self) -> None:
        self.proc.stop()

    def worker_env(self, endpoint_url: str) -> dict[str, str]:
        """What a worker needs to keep its results here, reaching the store at
        ``endpoint_url`` (a FaultProxy's), with staging under ``staging_root``."""
        return {
            **S3_WORKER_ENV,
            "AUDIO_STORE": f"s3://{self.bucket}/{self.prefix}",
            "S3_ENDPOINT_URL": endpoint_url,
            "S3_ADDRESSING_STYLE": "path",
            "TMPDIR": str(self.staging_root),
        }

    def objects(self) -> dict[str, dict[str, Any]]:
        """Every object under the prefix: key -> its listing entry."""
        out: dict[str, dict[str, Any]] = {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix}/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                out[obj["Key"]] = dict(obj)
        return out

    def uploads(self) -> list[dict[str, Any]]:
        """The incomplete multipart uploads in the bucket."""
        out: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket
        ):
            out.extend(dict(u) for u in page.get("Uploads", []))
        return out

    def key_of(self, location: str) -> str:
        ours = f"s3://{self.bucket}/"
        if not location.startswith(ours):
            raise ValueError(f"{location!r} is not in s3://{self.bucket}")
        return location.removeprefix(ours)

    def read(self, record: Mapping[str, str]) -> bytes:
        """The stored result of a succeeded job's record (its ``location``)."""
        got = self.client.get_object(Bucket=self.bucket, Key=self.key_of(record["location"]))
        return got["Body"].read()


class Stack:
    """Redis (AOF), the sandbox, workers and a caller app, in ``workdir``."""

    def __init__(
        self, workdir: Path, *, env: Mapping[str, str] | None = None, redis_server: Any = None
    ) -> None:
        self.workdir = workdir
        # ``redis_server``: another Redis with ``url``, ``client()`` and ``stop()`` (a Sentinel
        # set: tests/chaos/failover.py); a redis-server with AOF by default.
        self.redis = redis_server or RedisServer(workdir / "redis", aof=True).start()
        self.sandbox = SandboxServer(port=0).start()
        self.audio_dir = workdir / "audio"
        self.extra_env = {**CHAOS_ENV, **(env or {})}
        self.workers: dict[str, CeleryWorker] = {}
        self.proxies: list[TcpProxy] = []
        self.fault_proxies: list[FaultProxy] = []
        self.stores: list[ObjectStore] = []
        self.beats: list[Proc] = []
        self.caller: Celery = caller_app(self.redis.url)
        self.t0 = time.monotonic()
        self.events: list[str] = []
        self.processes: list[str] = [getattr(self.redis, "describe", "redis-server (AOF everysec)")]
        self.settings: dict[str, str] = {}

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
        full = {**self.env(redis_url), **(env or {})}
        self._ran(
            f"{name}: celery worker -P {pool} -c {concurrency}"
            + (" (Redis through a TCP proxy)" if redis_url else ""),
            full,
        )
        w = CeleryWorker(
            full,
            self.workdir / "logs" / f"{name}.log",
            name=name,
            pool=pool,
            concurrency=concurrency,
        )
        self.workers[name] = w.start(timeout=60)
        return w

    def beat(self, **extra: str) -> Proc:
        """A beat (RedBeat) on the direct Redis URL: the sweeper, as in production."""
        self._ran("beat (RedBeat: the sweep)", self.env(**extra))
        b = beat(self.env(**extra), self.workdir / "logs" / f"beat{len(self.beats)}.log")
        self.beats.append(b.start(timeout=60))
        return b

    def _ran(self, process: str, env: Mapping[str, str]) -> None:
        """Record a process and the settings it had (for :meth:`measure`)."""
        if process not in self.processes:
            self.processes.append(process)
        for name, value in non_defaults(env).items():
            seen = self.settings.get(name)
            if seen is None:
                self.settings[name] = value
            elif value not in seen.split(" / "):
                self.settings[name] = f"{seen} / {value}"

    def sweeps(self) -> dict[str, int]:
        """What the sweeper did so far: ``{action: jobs}`` from its running totals."""
        totals: dict[str, str] = self.client().hgetall(f"{PREFIX}:maintenance:totals")  # type: ignore[assignment]
        return {k.split(".", 1)[1]: int(v) for k, v in totals.items() if k.startswith("sweep.")}

    def proxy(self) -> TcpProxy:
        p = TcpProxy(self.redis.port).start()
        self.proxies.append(p)
        return p

    def object_store(self, bucket: str, prefix: str) -> ObjectStore:
        """moto's S3 server, started in a process of its own, with ``bucket`` created."""
        store = ObjectStore(self.workdir, bucket, prefix)
        self.stores.append(store)
        self.processes.append("moto's S3 server (workers reach it through fault proxies)")
        return store.start()

    def fault_proxy(self, port: int) -> FaultProxy:
        """A FaultProxy to a loopback ``port`` (an object store's), stopped with the stack."""
        p = FaultProxy(port).start()
        self.fault_proxies.append(p)
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
        for fp in self.fault_proxies:
            fp.stop()
        for store in self.stores:
            store.stop()
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
        self,
        scenario: str,
        fault: str,
        load: str,
        job_ids: list[str],
        wall: float,
        *,
        read: Callable[[Mapping[str, str]], bytes] | None = None,
    ) -> Figures:
        """Count the jobs' outcomes. ``read`` gives a succeeded job's stored bytes from its
        record (an object store's :meth:`ObjectStore.read`); by default its ``file``."""
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
            data = read(h) if read is not None else Path(h["file"]).read_bytes()
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
        fig.settings = dict(self.settings)
        fig.processes = list(self.processes)
        fig.worker_exits = self.logs().count("Unrecoverable error")
        return fig


def write_figures(path: Path, figures: Figures) -> None:
    """Merge one scenario's figures into the JSON file at ``path`` (keyed by scenario)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[figures.scenario] = figures.as_dict()
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
