"""The fault scenarios of the reliability issue, sized by the caller.

``tests/chaos/test_chaos.py`` runs them at full size (``make chaos``);
``tests/integration/test_reliability.py`` runs a reduced version inside ``make test``. Each
returns :class:`~tests.support.harness.Figures`; the caller asserts and records them.
"""

from __future__ import annotations

import base64
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery.result import AsyncResult

from tests.support.faultproxy import FaultProxy
from tests.support.harness import PREFIX, Figures, ObjectStore, Stack
from tests.support.harness import VOICE as VOICE_V3
from tests.support.procs import CeleryWorker
from tests.support.tcpproxy import TcpProxy
from worker.storage.s3 import STAGING_NAME, TRANSFER

# Realistic Akool timing: done after about 1 s plus 20 ms a word, polled with backoff.
LIFECYCLE = {"mode": "duration", "base_seconds": 1.0, "per_word_seconds": 0.02, "jitter": 0.3}
# The load: Akool takes about 4 s a job.
FOUR_SECONDS = {"mode": "duration", "base_seconds": 4.0, "per_word_seconds": 0.0, "jitter": 0.25}
SLOW = 4.0  # seconds: beyond AKOOL_READ_TIMEOUT=3, so the client gives up and Akool still acts

# The fault mix on Akool's API calls, plus gateway errors on file downloads.
AKOOL_FAULTS: list[dict[str, Any]] = [
    *(
        rule
        for endpoint in ("create", "detail")
        for rule in (
            {"endpoint": endpoint, "kind": "slow", "delay": SLOW, "probability": 0.10},
            {"endpoint": endpoint, "kind": "http_500_html", "probability": 0.20},
            {"endpoint": endpoint, "kind": "code", "code": 1005, "probability": 0.05},
            {"endpoint": endpoint, "kind": "malformed_json", "probability": 0.05},
        )
    ),
    {"endpoint": "download", "kind": "http_500_html", "probability": 0.20},
]


def worker_crashes(
    stack: Stack, jobs: int, *, kill_every: float, kills: int, timeout: float
) -> Figures:
    """Two workers; one is SIGKILLed (with its pool) every ``kill_every`` s and restarted.
    The jobs arrive in ``kills + 1`` batches, one just before each kill, so every kill lands
    while messages are being fetched and run."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, seed=1)
    stack.worker("steady")
    victim = stack.worker("victim")
    ids = [f"crash-{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(jobs)]
    batches = [ids[i :: kills + 1] for i in range(kills + 1)]
    stack.send(batches[0])
    state = {"next": kill_every, "done": 0}

    def tick(elapsed: float, final: int) -> None:
        if state["done"] < kills and elapsed >= state["next"]:
            stack.send(batches[state["done"] + 1])
            time.sleep(0.3)  # the victim is taking them off the queue
            victim.kill()
            stack.note(f"batch sent, victim SIGKILLed 0.3 s later ({final}/{jobs} final)")
            victim.start(timeout=60)
            state["done"] += 1
            state["next"] = elapsed + kill_every

    wall = stack.wait_final(ids, timeout, tick)
    return stack.measure(
        "worker_crash",
        f"worker SIGKILL every {kill_every:g} s, restarted ({kills} kills)",
        f"{jobs} jobs, 2 workers x 2 processes",
        ids,
        wall,
    )


def dispatcher_kills(
    stack: Stack,
    jobs: int,
    *,
    kill_every: float,
    kills: int,
    timeout: float,
    heartbeat: float | None = None,
) -> Figures:
    """Every poll wait parked (``POLL_PARK_THRESHOLD`` 0.2 s): the polls live in Redis and the
    workers' dispatchers send them. One of two workers (its dispatcher, its restorer, the
    messages it holds) is SIGKILLed every ``kill_every`` s and restarted, with the default
    ``VISIBILITY_TIMEOUT`` (900 s) and no beat: only the heartbeats bring its messages back.
    Counts polls dispatched twice for the same due time (two poll events of a job with one
    planned time) and the longest a job waited after a kill."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, seed=3)
    env = {"POLL_PARK_THRESHOLD": "0.2", "VISIBILITY_TIMEOUT": "900"}
    if heartbeat is not None:
        env["HEARTBEAT_TIMEOUT"] = f"{heartbeat:g}"
    stack.worker("steady", env=env)
    victim = stack.worker("victim", env=env)
    ids = [f"park-{uuid.uuid4().hex[:6]}-{i:04d}" for i in range(jobs)]
    batches = [ids[i :: kills + 1] for i in range(kills + 1)]
    stack.send(batches[0])
    state = {"next": kill_every, "done": 0}

    def tick(elapsed: float, final: int) -> None:
        if state["done"] < kills and elapsed >= state["next"]:
            stack.send(batches[state["done"] + 1])
            time.sleep(0.3)
            victim.kill()
            stack.note(f"batch sent, victim SIGKILLed 0.3 s later ({final}/{jobs} final)")
            victim.start(timeout=60)
            state["done"] += 1
            state["next"] = elapsed + kill_every

    wall = stack.wait_final(ids, timeout, tick)
    fig = stack.measure(
        "dispatcher_kill",
        f"a worker with its dispatcher SIGKILLed every {kill_every:g} s, restarted ({kills} "
        "kills); VISIBILITY_TIMEOUT 900, no beat",
        f"{jobs} jobs, every poll wait parked, 2 workers x 2 processes",
        ids,
        wall,
    )
    r = stack.client()
    twice = 0
    for job_id in ids:
        planned = Counter(
            e.get("planned")
            for e in (json.loads(raw) for raw in r.lrange(f"{PREFIX}:events:{job_id}", 0, -1))
            if e.get("type") == "poll" and not e.get("error")
        )
        twice += sum(n - 1 for n in planned.values() if n > 1)
    fig.notes.append(f"polls dispatched twice for one due time: {twice}")
    fig.notes.append(f"parked polls left: {r.zcard(f'{PREFIX}:parked')}")
    return fig


def redis_restart(stack: Stack, jobs: int, *, at: float, timeout: float) -> Figures:
    """redis-server (AOF everysec) stopped and started again on the same port mid-run."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, seed=2)
    stack.worker("w1")
    stack.worker("w2")
    ids = stack.enqueue(jobs, "redis")
    done: list[str] = []

    def tick(elapsed: float, final: int) -> None:
        if not done and elapsed >= at:
            stack.note(f"{final}/{jobs} final")
            stack.restart_redis(down_seconds=2.0)
            done.append("x")

    wall = stack.wait_final(ids, timeout, tick)
    return stack.measure(
        "redis_restart",
        "redis-server restarted mid-run (SIGTERM, AOF appendfsync everysec, 2 s down)",
        f"{jobs} jobs, 2 workers x 2 processes",
        ids,
        wall,
    )


def _network_fault(
    stack: Stack,
    jobs: int,
    *,
    scenario: str,
    fault: str,
    victim: str,
    seed: int,
    at: float,
    begin: Callable[[TcpProxy], str],
    down: float | None,
    timeout: float,
    probe: int,
    probe_timeout: float,
    env: dict[str, str] | None = None,
    lifecycle: dict[str, Any] | None = None,
) -> Figures:
    """One worker (``victim``) reaches Redis through a TCP proxy, another directly. At ``at`` s
    ``begin`` breaks the proxy (and says how); after ``down`` s it heals (None: never). Then the
    direct worker stops and ``probe`` more jobs must be done by the victim alone: it recovered
    by itself. With a heal, a note gives when the last of the first ``jobs`` completed,
    counted from the heal ("last job completed X s after the heal"; negative: before it)."""
    stack.sandbox.configure(lifecycle=lifecycle or LIFECYCLE, seed=seed)
    proxy = stack.proxy()
    stack.worker(victim, redis_url=proxy.url(), env=env)
    direct = stack.worker("direct", env=env)
    ids = stack.enqueue(jobs, scenario)
    phase: list[str] = []
    healed: list[float] = []

    def tick(elapsed: float, final: int) -> None:
        if not phase and elapsed >= at:
            stack.note(f"{begin(proxy)} ({final}/{jobs} final)")
            phase.append("broken")
        elif phase == ["broken"] and down is not None and elapsed >= at + down:
            proxy.heal()
            healed.append(time.time())
            stack.note(f"proxy healed ({final}/{jobs} final)")
            phase.append("healed")

    started = time.monotonic()
    wall = stack.wait_final(ids, timeout, tick)
    if down is not None and "healed" not in phase:
        # Every job was done (by the direct worker) before the fault's end: heal on time anyway,
        # or the probes could never reach the victim.
        time.sleep(max(0.0, started + at + down - time.monotonic()))
        if not phase:
            tick(at, len(ids))
        tick(at + down, len(ids))
    r = stack.client()
    done = [float(t) for t in (r.hget(f"{PREFIX}:job:{j}", "completed_at") for j in ids) if t]
    r.close()
    after_heal = round(max(done) - healed[0], 1) if healed and len(done) == len(ids) else None
    direct.stop()
    stack.note(f"direct worker stopped; probe jobs go to the {victim} worker")
    probes = stack.enqueue(probe, "probe")
    probe_wall = stack.wait_final(probes, probe_timeout)
    fig = stack.measure(
        scenario,
        fault,
        f"{jobs} jobs + {probe} probe jobs, 2 workers x 2 processes",
        ids + probes,
        wall + probe_wall,
    )
    fig.notes.append(f"probe jobs done by the {victim} worker alone in {probe_wall:.1f} s")
    if down is not None:
        fig.notes.append(f"last job completed {after_heal} s after the heal")
    return fig


def after_heal(fig: Figures) -> float | None:
    """The note of :func:`_network_fault`: seconds from the heal to the last job's completion."""
    for note in fig.notes:
        if note.startswith("last job completed ") and note.endswith(" s after the heal"):
            value = note.removeprefix("last job completed ").removesuffix(" s after the heal")
            return None if value == "None" else float(value)
    return None


def worker_partition(
    stack: Stack, jobs: int, *, mode: str, at: float, down: float, timeout: float
) -> Figures:
    """The issue's partition: one worker cut off from Redis for ``down`` s by the proxy, then
    healed (``mode`` ``cut``: RST and refused, a firewall's reject; ``stall``: nothing
    forwarded, nothing dropped, a dead route whose TCP retransmits and delivers late). Jobs
    of about 4 s; its jobs must be done within 30 s of the heal, by it or by others."""

    def begin(proxy: TcpProxy) -> str:
        getattr(proxy, mode)()
        return f"proxy {mode}"

    return _network_fault(
        stack,
        jobs,
        scenario=f"worker_partition_{mode}",
        fault=f"worker partitioned from Redis for {down:g} s (TCP proxy {mode}: "
        + ("RST + refuse" if mode == "cut" else "nothing forwarded, delivered late")
        + "), then healed",
        victim="partitioned",
        seed=12,
        at=at,
        begin=begin,
        down=down,
        timeout=timeout,
        probe=5,
        probe_timeout=60,
        lifecycle=FOUR_SECONDS,
    )


def redis_cut(
    stack: Stack, jobs: int, *, at: float, down: float, timeout: float, probe: int = 5
) -> Figures:
    """The proxy resets all connections and refuses new ones for ``down`` s."""

    def cut(proxy: TcpProxy) -> str:
        proxy.cut()
        return "proxy cut"

    return _network_fault(
        stack,
        jobs,
        scenario="redis_cut",
        fault=f"worker cut off from Redis for {down:g} s (TCP proxy: RST + refuse)",
        victim="cut-off",
        seed=3,
        at=at,
        begin=cut,
        down=down,
        timeout=timeout,
        probe=probe,
        probe_timeout=60,
    )


def redis_stall(
    stack: Stack, jobs: int, *, at: float, down: float, timeout: float, probe: int = 5
) -> Figures:
    """The proxy forwards nothing and resets nothing for ``down`` s, longer than kombu's BRPOP
    health check (brpop timeout + 25 s), then the late bytes flow again. Only timeouts can
    notice; the worker must not hang."""

    def stall(proxy: TcpProxy) -> str:
        proxy.stall()
        return "proxy stalled"

    return _network_fault(
        stack,
        jobs,
        scenario="redis_stall",
        fault=f"worker's Redis traffic stalled for {down:g} s (TCP proxy forwards nothing, "
        "resets nothing), then delivered late",
        victim="stalled",
        seed=6,
        at=at,
        begin=stall,
        down=down,
        timeout=timeout,
        probe=probe,
        probe_timeout=90,
    )


def redis_half_open(
    stack: Stack, jobs: int, *, at: float, timeout: float, probe: int = 5, with_beat: bool = False
) -> Figures:
    """Every connection the worker has to Redis goes silent for good (a NAT or load balancer
    forgot them); new connections work. Only the worker's own timeouts can notice.

    ``with_beat`` (the row's earlier runs): beat's sweep every 5 s, TASK_TIME_LIMIT 40 s and
    VISIBILITY_TIMEOUT 165 s. A worker whose publish of a chain's next step times out records
    a failure (Celery, outside the task body): that job's next step is lost, and only the
    sweeper resumes it; and a hard time limit below the 20 s socket timeout would kill a step
    blocked on a dead connection and drop its message. Without it, the settings the stack
    has (``make chaos``: the defaults, TASK_TIME_LIMIT 300 s) and no beat."""
    env = {"TASK_TIME_LIMIT": "40", "VISIBILITY_TIMEOUT": "165"} if with_beat else {}
    if with_beat:
        stack.beat(SWEEP_INTERVAL="5", **env)

    def strand(proxy: TcpProxy) -> str:
        return f"{proxy.strand()} connections stranded"

    fig = _network_fault(
        stack,
        jobs,
        scenario="redis_half_open",
        fault="every Redis connection of one worker silent for good (half-open), new ones work"
        + ("; beat running; TASK_TIME_LIMIT 40 s" if with_beat else "; no beat"),
        victim="stranded",
        seed=7,
        at=at,
        begin=strand,
        down=None,
        timeout=timeout,
        probe=probe,
        probe_timeout=120,
        env=env,
    )
    if with_beat:
        fig.notes.append(
            f"beat's sweep (every 5 s, grace 3 s) acted on: {stack.sweeps() or 'none'}"
        )
    return fig


def akool_faults(stack: Stack, jobs: int, *, timeout: float) -> Figures:
    """The sandbox at 20% HTML 5xx, 10% slow, 5% code 1005, 5% malformed JSON."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, faults=AKOOL_FAULTS, seed=4)
    stack.worker("w1")
    stack.worker("w2")
    ids = stack.enqueue(jobs, "faults")
    wall = stack.wait_final(ids, timeout)
    fig = stack.measure(
        "akool_faults",
        "create+detail: 20% HTML 500, 10% slow (4 s > 3 s timeout), 5% code 1005, "
        "5% malformed JSON; downloads: 20% HTML 500",
        f"{jobs} jobs, 2 workers x 2 processes",
        ids,
        wall,
    )
    return fig


# --- results on S3 ----------------------------------------------------------------------

S3_BUCKET, S3_PREFIX = "audio-results", "tts"
MB = 1024 * 1024
SMALL_RESULT = 1 * MB  # one PutObject
LARGE_RESULT = 10 * MB  # multipart (worker/storage/s3.py: 8 MB parts, above 8 MB)
CAP_BYTES = 512 * 1024  # cap_connections: a connection is reset past this many bytes up
HOLD_AFTER = 3 * MB // 2  # the victim's S3 answers are held once this much more went up
CUT_AFTER = 4 * MB  # cut_after: the store vanishes once this much more went up (mostly parts)

# The timeline, in seconds after the first job is sent (the load runs ``jobs / rate`` s).
KILL_UPLOADING = 3.0  # hold the victim's S3 answers; SIGKILL it 1 s after they are held
DOWN, UP = 8.0, 20.0  # S3 refuses every connection (RST) in between
KILL_STORING = 12.0  # SIGKILL the victim again while jobs wait in `storing`
CAP = 26.0  # every request body over CAP_BYTES is reset mid-transfer; small requests pass
GONE = 31.0  # then uploads flow again and the store vanishes CUT_AFTER bytes into them
BACK = 40.0  # and comes back
SIZE_WINDOW = 2.0  # results made in every third window of 2 s are large


@dataclass
class StoreFigures(Figures):
    """The figures of a run with results on S3; ``store`` counts the bucket against the jobs
    (objects, missing, extra, metadata mismatches, incomplete multipart uploads left)."""

    store: dict[str, Any] = field(default_factory=dict)


class _StoreRun:
    """The object_store scenario's clock: the steady load, the result sizes, the faults and
    the samples, driven by :meth:`Stack.wait_final`'s tick (about every 0.5 s)."""

    def __init__(
        self,
        stack: Stack,
        s3: ObjectStore,
        proxies: dict[str, FaultProxy],
        victim: CeleryWorker,
        ids: list[str],
        rate: float,
    ) -> None:
        self.stack, self.s3, self.proxies, self.victim = stack, s3, proxies, victim
        self.ids, self.rate = ids, rate
        self.sent = 0
        self.size: int | None = None
        self.done: set[str] = set()
        self.uploads_peak = 0
        self.storing_peak = 0
        self.hold: tuple[float, int] | None = None  # (when the hold was set, byte threshold)
        self.held_at: float | None = None
        self.restarting: threading.Thread | None = None
        self.errors: list[str] = []
        self.open_before_cap: set[str] = set()  # upload ids open as the second outage began
        self.left_when_back: list[tuple[str, bool]] = []  # (key, open before that outage)

    def _restart_victim(self) -> None:
        def run() -> None:
            try:
                self.victim.start(timeout=90)
            except Exception as exc:  # surfaced by finish()
                self.errors.append(f"victim restart: {exc!r}"[:500])

        # In a thread: a worker whose store is down at start takes seconds to check it, and
        # the load and the timeline go on meanwhile.
        self.restarting = threading.Thread(target=run, name="victim-restart", daemon=True)
        self.restarting.start()

    def _all(self, act: Callable[[FaultProxy], None]) -> None:
        for p in self.proxies.values():
            act(p)

    def tick(self, elapsed: float, final: int) -> None:
        jobs = len(self.ids)
        due = min(jobs, int(elapsed * self.rate) + 1)
        if due > self.sent:
            self.stack.send(self.ids[self.sent : due])
            self.sent = due
        size = LARGE_RESULT if int(elapsed // SIZE_WINDOW) % 3 == 0 else SMALL_RESULT
        if size != self.size and self.sent < jobs:
            self.stack.sandbox.configure(audio_bytes=size)
            self.size = size
        uploads = self.s3.uploads()
        self.uploads_peak = max(self.uploads_peak, len(uploads))
        states = self.stack.states(self.ids[: self.sent])
        storing = sum(1 for st in states.values() if st == "storing")
        self.storing_peak = max(self.storing_peak, storing)
        where = f"({final}/{jobs} final, {storing} storing, {len(uploads)} multipart open)"
        victim_proxy = self.proxies["victim"]

        # 1. A SIGKILL mid-upload: hold the victim's S3 answers once its uploads carried
        # HOLD_AFTER more bytes, so the kill lands while a result is being stored.
        if self.hold is None and elapsed >= KILL_UPLOADING:
            self.hold = (elapsed, victim_proxy.upstream_bytes + HOLD_AFTER)
            victim_proxy.hold_answers_after(HOLD_AFTER)
            self.stack.note(f"victim's S3 answers held after {HOLD_AFTER // 1024} KB more {where}")
        elif self.hold is not None and self.held_at is None and "kill1" not in self.done:
            if victim_proxy.upstream_bytes >= self.hold[1]:
                self.held_at = elapsed
            elif elapsed >= self.hold[0] + 8:
                self.held_at = elapsed - 1.0
                self.stack.note("no upload of the victim's reached the hold in 8 s")
        if self.held_at is not None and "kill1" not in self.done and elapsed >= self.held_at + 1:
            self.done.add("kill1")
            self.victim.kill()
            victim_proxy.heal()
            open_keys = sorted(u["Key"].rsplit("/", 1)[-1] for u in uploads)
            self.stack.note(
                f"victim SIGKILLed {elapsed - self.held_at:.1f} s after its S3 answers were "
                f"held, mid-upload {where}; open at moto: {', '.join(open_keys) or 'none'}"
            )
            self._restart_victim()

        # 2. S3 refuses every connection (RST on the next byte, then on connect).
        if "down" not in self.done and elapsed >= DOWN:
            self.done.add("down")
            self._all(lambda p: p.cut_after(0))
            self.stack.note(f"S3 down: proxies reset and refuse every connection {where}")
        if (
            "kill2" not in self.done
            and "down" in self.done
            and elapsed >= KILL_STORING
            and (storing or elapsed >= UP - 2)
            and not (self.restarting and self.restarting.is_alive())
        ):
            self.done.add("kill2")
            self.victim.kill()
            self.stack.note(f"victim SIGKILLed while S3 is down {where}")
            self._restart_victim()
        if "up" not in self.done and elapsed >= UP:
            self.done.add("up")
            self._all(lambda p: p.heal())
            self.stack.note(f"S3 back {where}")

        # 3. S3 goes away again, cutting uploads mid-transfer: first every body over
        # CAP_BYTES is reset (small requests, such as s3transfer's abort, still pass); then
        # the cap is lifted and the store vanishes CUT_AFTER bytes into the uploads that
        # resume, most of them parts of multipart uploads, whose abort it then refuses.
        if "cap" not in self.done and elapsed >= CAP:
            self.done.add("cap")
            self.open_before_cap = {u["UploadId"] for u in uploads}
            self._all(lambda p: p.cap_connections(CAP_BYTES))
            self.stack.note(f"S3 resets any connection past {CAP_BYTES // 1024} KB up {where}")
        if "gone" not in self.done and elapsed >= GONE:
            self.done.add("gone")
            for p in self.proxies.values():
                p.heal()
                p.cut_after(CUT_AFTER)
            self.stack.note(f"cap lifted; S3 gone {CUT_AFTER // MB} MB into the uploads {where}")
        if "back" not in self.done and "gone" in self.done and elapsed >= BACK:
            self.done.add("back")
            self.left_when_back = sorted(
                (u["Key"], u["UploadId"] in self.open_before_cap) for u in uploads
            )
            self._all(lambda p: p.heal())
            self.stack.note(f"S3 back {where}")

    def finish(self) -> None:
        """Wait for a restart still under way; heal whatever is still broken."""
        if self.restarting is not None:
            self.restarting.join(timeout=120)
        if "back" not in self.done:
            self._all(lambda p: p.heal())
            self.stack.note("every job final before the timeline's end: proxies healed")


def _spread(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return {
        "n": len(values),
        "median": round(statistics.median(values), 1),
        "p90": round(p90, 1),
        "max": round(values[-1], 1),
    }


def _count_store(
    stack: Stack, s3: ObjectStore, ids: list[str], run: _StoreRun
) -> tuple[dict[str, Any], list[str]]:
    """The bucket against the job records: one object per succeeded job, with its sha256 in
    the metadata; the multipart uploads left; how long jobs waited in ``storing``."""
    r = stack.client()
    records: dict[str, dict[str, str]] = {}
    for j in ids:
        records[j] = r.hgetall(f"{PREFIX}:job:{j}")  # type: ignore[assignment]
    r.close()
    won = {j: h for j, h in records.items() if h.get("state") == "succeeded"}
    objects = s3.objects()

    def stem(key: str) -> str:
        return key.removeprefix(f"{s3.prefix}/").rsplit(".", 1)[0]

    per_job = Counter(stem(k) for k in objects)
    missing, meta_mismatch = [], []
    for j, h in won.items():
        key = s3.key_of(h["location"])
        if key not in objects:
            missing.append(j)
            continue
        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        if head["Metadata"].get("sha256") != h["sha256"] or head["ContentLength"] != int(
            h["bytes"]
        ):
            meta_mismatch.append(j)
    extra = sorted(k for k in objects if stem(k) not in won or per_job[stem(k)] > 1)
    left = s3.uploads()
    states = {j: h.get("state") for j, h in records.items()}
    waited = [
        float(h["completed_at"]) - float(h["storage_since"])
        for h in won.values()
        if h.get("storage_since")
    ]
    ready_to_stored = [
        float(h["completed_at"]) - float(h["detected_at"])
        for h in won.values()
        if h.get("detected_at")
    ]
    attempts = [int(h.get("storage_attempts", 0)) for h in won.values()]
    staging = s3.staging_root / STAGING_NAME
    staged = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
    partial = [n for n in staged if n.endswith(".part")]
    store: dict[str, Any] = {
        "objects": len(objects),
        "succeeded": len(won),
        "missing": len(missing),
        "extra": len(extra),
        "metadata_mismatch": len(meta_mismatch),
        "multipart_results": sum(
            1 for h in won.values() if int(h["bytes"]) >= TRANSFER.multipart_threshold
        ),
        "uploads_left": len(left),
        "uploads_open_peak": run.uploads_peak,
        "uploads_left_when_back": len(run.left_when_back),
        "uploads_cut_left_when_back": sum(1 for _, older in run.left_when_back if not older),
        "storing_peak": run.storing_peak,
        "storing_wait": _spread(waited),
        "storage_attempts_max": max(attempts, default=0),
        "ready_to_stored": _spread(ready_to_stored),
        "transient_errors": sum(int(h.get("transient_errors", 0)) for h in records.values()),
        "proxy_resets": sum(p.resets for p in run.proxies.values()),
        "staging_left": len(staged) - len(partial),
        "staging_partial_left": len(partial),
    }
    notes = []
    if missing:
        notes.append(f"succeeded without an object: {', '.join(sorted(missing)[:10])}")
    if extra:
        notes.append(f"objects of no succeeded job, or a second one: {', '.join(extra[:10])}")
    if meta_mismatch:
        notes.append(f"sha256 metadata or size differs: {', '.join(sorted(meta_mismatch)[:10])}")
    cut = [k for k, older in run.left_when_back if not older]
    older = [k for k, older in run.left_when_back if older]
    if run.left_when_back:
        notes.append(
            f"multipart uploads open when S3 came back the second time: {len(cut)} cut by that "
            f"outage, which neither s3transfer nor the store could abort while S3 was gone "
            f"({', '.join(stem(k) for k in cut) or 'none'}), and {len(older)} open since before "
            f"it ({', '.join(stem(k) for k in older) or 'none'}); their jobs ended "
            f"{dict(Counter(states.get(stem(k)) for k, _ in run.left_when_back))}, and "
            f"{len(left)} uploads were left at the end (the next successful put of a key aborts "
            "what earlier tries left)"
        )
    long = [w for w in waited if w > 60]
    if long:
        env = stack.extra_env
        vt = int(env["VISIBILITY_TIMEOUT"])
        # worker/pipeline/schedule.py longest_countdown: the cap on the wait between two tries
        cap = max(float(env["POLL_MAX_DELAY"]), vt - int(env["TASK_TIME_LIMIT"]) - 120)
        notes.append(
            f"{len(long)} jobs waited over 60 s in `storing`, longer than any outage plus the "
            f"{cap:g} s cap on the wait between tries: the victim held their next try when it "
            f"was SIGKILLed, and such a message comes back after VISIBILITY_TIMEOUT ({vt} s)"
        )
    for u in left:
        notes.append(
            f"multipart upload left at the end: {u['Key']} (job {states.get(stem(u['Key']))})"
        )
    if staged:
        notes.append(f"left in the staging directory: {', '.join(staged[:10])}")
    notes.extend(run.errors)
    return store, notes


def object_store(stack: Stack, jobs: int, *, rate: float, timeout: float) -> StoreFigures:
    """Results on S3 (moto's server, a process of its own) under a steady load of ``jobs`` sent
    at ``rate`` a second. Each of two workers reaches S3 through its own FaultProxy; both
    proxies get the same faults, and the victim's alone is used to time its first SIGKILL
    mid-upload. The timeline is above (KILL_UPLOADING ... BACK); the workers keep the default
    STORAGE_RETRY_WINDOW (a day), so no job may fail."""
    s3 = stack.object_store(S3_BUCKET, S3_PREFIX)
    stack.sandbox.configure(lifecycle=LIFECYCLE, audio_bytes=SMALL_RESULT, seed=8)
    proxies = {name: stack.fault_proxy(s3.port) for name in ("steady", "victim")}
    stack.worker("steady", env=s3.worker_env(proxies["steady"].url))
    victim = stack.worker("victim", env=s3.worker_env(proxies["victim"].url))
    run_id = uuid.uuid4().hex[:6]
    ids = [f"s3-{run_id}-{i:04d}" for i in range(jobs)]
    run = _StoreRun(stack, s3, proxies, victim, ids, rate)
    stack.note(f"moto on port {s3.port}; the load starts, t=0 of the timeline")
    wall = stack.wait_final(ids, timeout, run.tick)
    run.finish()
    fig = stack.measure(
        "object_store",
        f"results on S3 (moto) behind a fault proxy: refused for {UP - DOWN:g} s; then "
        f"bodies over {CAP_BYTES // 1024} KB cut mid-transfer for {GONE - CAP:g} s, then the "
        f"store gone {CUT_AFTER // MB} MB into the resumed uploads for about {BACK - GONE:g} s; "
        "a worker SIGKILLed mid-upload and again while jobs waited in `storing`",
        f"{jobs} jobs at {rate:g}/s ({SMALL_RESULT // MB} MB results in one PUT, "
        f"{LARGE_RESULT // MB} MB multipart), 2 workers x 2 processes",
        ids,
        wall,
        read=s3.read,
    )
    store, notes = _count_store(stack, s3, ids, run)
    out = StoreFigures(**fig.as_dict(), store=store)
    out.notes.extend(notes)
    return out


# --- poison messages --------------------------------------------------------------------


def _envelope(stack: Stack, name: str, args: Any, kwargs: Any, task_id: str) -> dict[str, Any]:
    """A genuine kombu message for ``name``, captured from a private queue instead of sent."""
    queue = f"capture-{uuid.uuid4().hex[:8]}"
    stack.caller.send_task(name, args=args, kwargs=kwargs, queue=queue, task_id=task_id)
    raw = stack.client().rpop(queue)
    assert isinstance(raw, str)
    env: dict[str, Any] = json.loads(raw)
    env["properties"]["delivery_info"]["routing_key"] = "audio"
    return env


def poison(stack: Stack, good_jobs: int, *, timeout: float) -> tuple[Figures, dict[str, str]]:
    """Publish malformed and wrong messages raw to the ``audio`` queue, then good jobs.

    Returns the figures of the good jobs and, per poison message, how it became visible.
    """
    stack.sandbox.configure(lifecycle=LIFECYCLE, seed=5)
    w = stack.worker("w1")
    assert w.proc is not None
    pid = w.proc.pid
    r = stack.client()
    ids = {k: f"poison-{k}-{uuid.uuid4().hex[:6]}" for k in ("args", "types", "poll", "unknown")}
    bad_json = _envelope(stack, "audio.create", [], {}, f"poison-json-{uuid.uuid4().hex[:6]}")
    bad_json["body"] = base64.b64encode(b'[[], {"input_text": "unterminated').decode()
    not_protocol = _envelope(stack, "audio.create", [], {}, f"poison-shape-{uuid.uuid4().hex[:6]}")
    not_protocol["body"] = base64.b64encode(b'{"just": "an object"}').decode()
    raw_messages = [
        "this is not json at all {",  # not even a kombu envelope
        json.dumps(bad_json),  # envelope fine, body malformed JSON
        json.dumps(not_protocol),  # body JSON but not [args, kwargs, embed]
        json.dumps(_envelope(stack, "audio.create", [1, 2, 3], {}, ids["args"])),
        json.dumps(_envelope(stack, "audio.create", [], {"input_text": ["x"]}, ids["types"])),
        json.dumps(_envelope(stack, "audio.poll", ["no-such-job"], {}, ids["poll"])),
        json.dumps(_envelope(stack, "audio.no_such_task", [], {}, ids["unknown"])),
    ]
    for raw in raw_messages:
        r.lpush("audio", raw)
    stack.note(f"{len(raw_messages)} poison messages pushed to 'audio'")
    good = stack.enqueue(good_jobs, "after-poison")
    wall = stack.wait_final(good, timeout)
    fig = stack.measure(
        "poison",
        "malformed JSON, not a kombu message, wrong shape, positional args, wrong types, "
        "a poll of a missing job, an unknown task: pushed raw to the 'audio' queue",
        f"{len(raw_messages)} poison messages, then {good_jobs} jobs, 1 worker x 2 processes",
        good,
        wall,
    )
    seen: dict[str, str] = {}
    for key, task_id in ids.items():
        res = AsyncResult(task_id, app=stack.caller)
        seen[key] = f"{res.state}: {str(res.result)[:200]}" if res.state == "FAILURE" else ""
    time.sleep(1.0)
    seen["worker_pid_unchanged"] = str(w.proc is not None and w.proc.poll() is None and pid)
    return fig, seen


# --- Akool's two APIs under one load ------------------------------------------------------

V4_VOICE = "hkfHEbBvdQFNX4uWHqRF"  # an Akool voice of VoiceLab (sandbox/v4voices.py)
SAMPLES = 4  # v4 clone jobs share this many samples: each must be cloned once
MIXED_FAULTS: list[dict[str, Any]] = [
    *AKOOL_FAULTS,
    *(
        rule
        for endpoint in ("v4_tts", "v4_detail", "v4_clone", "v4_voice_detail")
        for rule in (
            {"endpoint": endpoint, "kind": "slow", "delay": SLOW, "probability": 0.10},
            {"endpoint": endpoint, "kind": "http_500_html", "probability": 0.20},
            {"endpoint": endpoint, "kind": "code", "code": 1005, "probability": 0.05},
            {"endpoint": endpoint, "kind": "malformed_json", "probability": 0.05},
        )
    ),
]


def _mixed_kwargs(stack: Stack, job_id: str, i: int) -> tuple[str, dict[str, Any]]:
    """Job ``i`` of the mix: 2 in 5 v3 creates, 2 in 5 v4 creates, 1 in 5 a v4 clone (clone,
    then speak) of one of ``SAMPLES`` samples."""
    text = f"Mixed run {job_id}: every job must finish once."
    kind = i % 5
    if kind < 2:
        return "audio.create", {"input_text": text, "voice_id": VOICE_V3, "job_id": job_id}
    if kind < 4:
        speed = 0.8 + 0.1 * (i % 4)
        return "audio.create", {
            "api": "v4",
            "input_text": text,
            "voice_id": V4_VOICE,
            "voice_options": {"speed": round(speed, 1)},
            "job_id": job_id,
        }
    sample = f"{stack.sandbox.url}/previews/{V4_VOICE}.wav?sample={i % SAMPLES}"
    return "audio.clone", {
        "api": "v4",
        "input_text": text,
        "source_voice_file": sample,
        "job_id": job_id,
    }


def mixed_apis(
    stack: Stack, jobs: int, *, kills: int, timeout: float
) -> tuple[Figures, dict[str, Any]]:
    """v3 creates, v4 creates and v4 clone-then-speak jobs in one load, on two workers, with
    the Akool fault mix on every endpoint of both APIs, and one worker SIGKILLed ``kills``
    times. Nothing lost, no duplicate beyond the ambiguous submits, each sample cloned once
    unless a clone's answer was lost (and then only as often). Returns the figures and the
    clone and credit counts."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, faults=MIXED_FAULTS, seed=6)
    stack.worker("steady")
    victim = stack.worker("victim")
    run = uuid.uuid4().hex[:6]
    ids = [f"mixed-{run}-{i:04d}" for i in range(jobs)]
    for i, job_id in enumerate(ids):
        name, kwargs = _mixed_kwargs(stack, job_id, i)
        stack.caller.send_task(name, kwargs=kwargs, queue="audio")
    state = {"next": 4.0, "done": 0}

    def tick(elapsed: float, final: int) -> None:
        if state["done"] < kills and elapsed >= state["next"]:
            victim.kill()
            stack.note(f"victim SIGKILLed ({final}/{jobs} final)")
            victim.start(timeout=60)
            state["done"] += 1
            state["next"] = elapsed + 6.0

    wall = stack.wait_final(ids, timeout, tick)
    fig = stack.measure(
        "mixed_apis",
        "v3 and v4 endpoints: 20% HTML 500, 10% slow (4 s > 3 s timeout), 5% code 1005, "
        f"5% malformed JSON; downloads: 20% HTML 500; worker SIGKILL x{kills}",
        f"{jobs} jobs (2/5 v3 create, 2/5 v4 create, 1/5 v4 clone of {SAMPLES} samples), "
        "2 workers x 2 processes",
        ids,
        wall,
    )
    r = stack.client()
    apis: Counter[str] = Counter()
    credits, ambiguous_clones = 0.0, 0
    for job_id in ids:
        h: dict[str, str] = r.hgetall(f"{PREFIX}:job:{job_id}")  # type: ignore[assignment]
        apis[json.loads(h["request"]).get("api", "v3") if h else "?"] += 1
        credits += float(h.get("credits") or 0)
        events = r.lrange(f"{PREFIX}:events:{job_id}", 0, -1)
        ambiguous_clones += sum(1 for e in events if '"clone_ambiguous"' in str(e))
    r.close()
    stats = stack.sandbox.stats()
    clones: dict[str, int] = stats["clones_by_source"]
    extra_clones = sum(n - 1 for n in clones.values())
    fig.notes += [
        f"jobs by api: {dict(apis)}",
        f"samples cloned: {len(clones)} of {SAMPLES}; extra clones: {extra_clones}; "
        f"ambiguous clone attempts: {ambiguous_clones}",
        f"credits on the job records: {round(credits, 4)}; charged by the sandbox: "
        f"{stats['credits']}",
    ]
    return fig, {
        "apis": dict(apis),
        "samples": len(clones),
        "extra_clones": extra_clones,
        "ambiguous_clones": ambiguous_clones,
        "credits_recorded": round(credits, 4),
        "credits_charged": float(stats["credits"]),
    }
