"""Redis Sentinel failover under load: the master is SIGKILLed while workers run jobs.

The stack is the harness's (tests/support/harness.py) on a Sentinel set instead of one
redis-server (tests/support/redis.py: a master, replicas, three Sentinels, all with AOF): the
workers and beat get ``REDIS_URL=sentinel://...``, the caller is a bare Celery app on kombu's
own Sentinel transport. What is measured, besides the harness's figures:

- **switch**: seconds from the SIGKILL to the Sentinels' ``+switch-master``;
- **recovery**: seconds from the SIGKILL to the first job completed after it (read from the
  job records' ``completed_at`` on the new master);
- **replication lag**: how far (bytes) each replica was behind the master just before the
  kill, and the job records the promoted replica lacks or holds older than the master had
  them (read from the master just before the kill, and from the new master the moment the
  Sentinels switch, before any worker has written to it);
- **records missing**: jobs without any record at the end: the caller's message and the
  record were both lost with the master. A caller must send such a job again, with the same
  ``job_id`` (idempotent); the scenario does, as such a caller would, and counts them;
- **sweeps**: jobs beat's sweep resumed (a step whose message was lost).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from tests.support.harness import PREFIX, Figures, Stack
from tests.support.redis import SentinelSet

SLOW_LIFECYCLE = {"mode": "duration", "base_seconds": 8.0, "per_word_seconds": 0.02,
                  "jitter": 0.25}  # fmt: skip


class SentinelRedis:
    """What the harness's Stack needs of its Redis, for a Sentinel set: the URL the workers
    get, a client of whichever server is the master now, and ``stop``."""

    def __init__(self, cluster: SentinelSet) -> None:
        self.cluster = cluster

    @property
    def url(self) -> str:
        return self.cluster.url

    @property
    def describe(self) -> str:
        c = self.cluster
        return (f"Sentinel set: a master and {len(c.data) - 1} replicas (AOF everysec), "
                f"{len(c.sentinels)} Sentinels")  # fmt: skip

    def client(self) -> redis.Redis:
        sentinels = [("127.0.0.1", s.port) for s in self.cluster.sentinels]
        manager = Sentinel(  # type: ignore[no-untyped-call]
            sentinels,
            sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 0.5},
            socket_timeout=5,
        )
        client: redis.Redis = manager.master_for(self.cluster.name, decode_responses=True)  # type: ignore[no-untyped-call]
        return client

    def stop(self, kill: bool = False) -> None:
        self.cluster.stop()


def sentinel_stack(
    workdir: Path, *, replicas: int = 2, env: dict[str, str] | None = None
) -> tuple[Stack, SentinelSet]:
    cluster = SentinelSet(workdir / "redis", replicas=replicas).start()
    stack = Stack(workdir, env=env, redis_server=SentinelRedis(cluster))
    # The caller: a bare Celery app on kombu's own Sentinel transport, as another backend has.
    options = {"master_name": cluster.name}
    stack.caller.conf.broker_transport_options = options
    stack.caller.conf.result_backend_transport_options = options
    return stack, cluster


Records = dict[str, tuple[str | None, float | None]]


def records(r: redis.Redis, ids: list[str]) -> Records:
    """job id -> (state, updated_at) as ``r`` holds them."""
    pipe = r.pipeline(transaction=False)
    for j in ids:
        pipe.hmget(f"{PREFIX}:job:{j}", "state", "updated_at")
    return {
        j: (state, float(updated) if updated else None)
        for j, (state, updated) in zip(ids, pipe.execute(), strict=True)
    }


class SwitchWatch(threading.Thread):
    """Waits for the Sentinels' ``+switch-master`` messages; at the first, at once reads the job
    records from the new master, before any worker has found it. ``switches``: (time, new
    master's port) of every switch until :meth:`stop`."""

    def __init__(self, sentinel_port: int, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.sentinel_port = sentinel_port
        self.ids = ids
        self.at: float | None = None
        self.new_port: int | None = None
        self.after: Records = {}
        self.switches: list[tuple[float, int]] = []
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        r = redis.Redis(port=self.sentinel_port, decode_responses=True)
        sub = r.pubsub()  # type: ignore[no-untyped-call]
        sub.subscribe("+switch-master")
        self.ready.set()
        while not self.stopping.is_set():
            message = sub.get_message(timeout=0.5)
            if not message or message["type"] != "message":
                continue
            at, port = time.time(), int(str(message["data"]).split()[-1])
            self.switches.append((at, port))
            if self.at is None:
                self.at, self.new_port = at, port
                self.after = records(redis.Redis(port=port, decode_responses=True), self.ids)
        sub.close()
        r.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)


def _applied(port: int) -> int | None:
    """The replication offset a replica has applied; None for a server not (yet) a replica (an
    old master started again, before the Sentinels reconfigured it)."""
    r = redis.Redis(port=port, decode_responses=True)
    try:
        offset = r.info("replication").get("slave_repl_offset")
        return None if offset is None else int(offset)
    finally:
        r.close()


@dataclass
class FailoverFigures(Figures):
    failover: dict[str, Any] = field(default_factory=dict)


def sentinel_failover(
    stack: Stack,
    cluster: SentinelSet,
    jobs: int,
    *,
    at: float,
    timeout: float,
    first_sentinel_down: bool = False,
    restart_after: float = 5.0,
    with_beat: bool = True,
    pool: str = "prefork",
    scenario: str = "sentinel_failover",
    lifecycle: dict[str, Any] | None = None,
    again_after: float | None = None,
    worker_env: dict[str, str] | None = None,
    before_kill: Callable[[], str] | None = None,
    after_switch: Callable[[], str] | None = None,
    read: Callable[[Mapping[str, str]], bytes] | None = None,
    fault: str = "",
    ready: Callable[[], bool] | None = None,
) -> FailoverFigures:
    """Two workers (``pool``, ``worker_env``) and, ``with_beat``, beat (its sweep every 5 s) on
    the Sentinels; ``jobs`` jobs; ``at`` s later the master is SIGKILLed; ``restart_after`` s
    after the switch it starts again (it comes back as a replica of the new master).
    ``again_after``: the new master is SIGKILLed too, that long after the first switch (two
    failovers); half the jobs are sent at the start, half 4 s before the second kill.
    ``before_kill`` / ``after_switch`` run just before the first kill and at the first switch,
    and say what they did. ``ready``: the first kill waits, up to 30 s past ``at``, until it
    says yes. ``read``: a stored result's bytes from its record (results on S3).
    ``first_sentinel_down``: the first Sentinel of REDIS_URL is stopped before anything
    starts, and stays down."""
    # Akool takes 6 to 10 s per job here, so that most jobs are in flight at the kill.
    stack.sandbox.configure(lifecycle=lifecycle or SLOW_LIFECYCLE, seed=11)
    if first_sentinel_down:
        cluster.sentinels[0].stop()
        stack.note("first Sentinel of REDIS_URL stopped before the workers start")
    stack.worker("w1", pool=pool, env=worker_env)
    stack.worker("w2", pool=pool, env=worker_env)
    if with_beat:
        stack.beat(SWEEP_INTERVAL="5")
    if again_after is None:
        ids = stack.enqueue(jobs, "failover")
        later: list[str] = []
    else:
        # Two failovers: half the jobs now, half 4 s before the second kill (in flight at it).
        run = uuid.uuid4().hex[:6]
        ids = [f"failover-{run}-{i:04d}" for i in range(jobs)]
        later = ids[jobs // 2 :]
        stack.send(ids[: jobs // 2])
    watch = SwitchWatch(cluster.sentinels[-1].port, ids)
    watch.start()
    watch.ready.wait(5)
    rounds = 1 if again_after is None else 2
    kills: list[dict[str, Any]] = []  # one per failover: killed, old, switched, restarted
    state: dict[str, Any] = {}  # the first failover's, for the figures

    def kill(final: int) -> None:
        old = cluster.master()
        master = redis.Redis(port=old, decode_responses=True)
        before = records(master, ids)
        offset = int(master.info("replication")["master_repl_offset"])
        master.close()
        cluster.by_port(old).kill()
        # What each replica had applied when its master died (it cannot gain more now),
        # against the master's offset read just before: bytes lost with the master, at least.
        applied = [_applied(p.port) for p in cluster.data if p.port != old and p.alive()]
        behind = [None if a is None else max(0, offset - a) for a in applied]
        kills.append({"killed": time.time(), "old": old})
        state["last_old"] = old
        if len(kills) == 1:
            state.update(killed=time.time(), old=old, before=before, behind=behind)
        stack.note(f"master :{old} SIGKILLed ({final}/{jobs} final; replicas behind by "
                   f"{behind} bytes)")  # fmt: skip

    def tick(elapsed: float, final: int) -> None:
        if not kills and elapsed >= at and (ready is None or ready() or elapsed >= at + 30):
            if before_kill is not None:
                stack.note(before_kill())
            kill(final)
            return
        for k in kills:
            if "switched" not in k and len(watch.switches) >= kills.index(k) + 1:
                k["switched"], port = watch.switches[kills.index(k)]
                stack.note(f"Sentinels switched to :{port}")
                if len(kills) == 1:
                    state["switched"] = k["switched"]
                    if after_switch is not None:
                        stack.note(after_switch())
            elif (
                "switched" in k
                and "restarted" not in k
                and (time.time() >= k["switched"] + restart_after)
            ):
                cluster.by_port(k["old"]).start()
                k["restarted"] = time.time()
                stack.note(f"old master :{k['old']} started again")
        first = kills[0] if kills else {}
        if (
            later
            and "switched" in first
            and time.time() >= first["switched"] + ((again_after or 0.0) - 4)
        ):
            stack.send(later)
            stack.note(f"{len(later)} more jobs sent ({final}/{jobs} final)")
            later.clear()
        if (
            len(kills) < rounds
            and "switched" in first
            and time.time() >= first["switched"] + (again_after or 0.0)
        ):
            kill(final)

    wall = stack.wait_final(ids, timeout, tick)
    # Records lost with the master: the caller sends those jobs again (same job_id).
    missing = [j for j, s in stack.states(ids).items() if s is None]
    if missing:
        stack.note(f"{len(missing)} jobs without a record: sent again by the caller")
        stack.send(missing)
        wall += stack.wait_final(missing, timeout)
    for k in kills:
        if "restarted" not in k:
            cluster.by_port(k["old"]).start()
            k["restarted"] = time.time()
    watch.stop()
    failovers = (
        f"two failovers, the second {again_after:g} s after the first switch; "
        if again_after is not None
        else ""
    )
    fig = stack.measure(
        scenario,
        f"{failovers}Redis master SIGKILLed (Sentinel: 3 Sentinels, quorum 2, down-after 1 s), "
        f"started again {restart_after:g} s after the switch"
        + ("; the first Sentinel of REDIS_URL down from the start" if first_sentinel_down else "")
        + (f"; {fault}" if fault else ""),
        f"{jobs} jobs, 2 workers x 2 {'threads' if pool == 'threads' else 'processes'}"
        f"{', beat' if with_beat else ', no beat'}, {len(cluster.data) - 1} replicas",
        ids,
        wall,
        read=read,
    )
    out = FailoverFigures(**fig.as_dict())
    out.failover = _failover_figures(stack, cluster, state, watch, ids, missing)
    f = out.failover
    out.notes += [
        f"switch {f['switch_seconds']} s after the kill; first job completed "
        f"{f['recovery_seconds']} s after the kill; last {f['last_done_after_switch']} s after "
        "the last switch",
        f"replication lag at the kill: replicas behind by {f['replica_bytes_behind']} bytes; "
        f"records the new master lacked {f['records_lost']}, held older {f['records_stale']}; "
        f"jobs without a record at the end (sent again) {f['records_missing']}",
        f"jobs resumed by beat's sweep: {f['sweeps']}",
        f"old master back as a replica: {f['old_master_role']}",
    ]
    if rounds > 1:
        out.notes.append(
            "switches, seconds after each kill: "
            + ", ".join(
                f"{round(k['switched'] - k['killed'], 1)}" if "switched" in k else "none"
                for k in kills
            )
        )
    return out


def _failover_figures(
    stack: Stack,
    cluster: SentinelSet,
    state: dict[str, Any],
    watch: SwitchWatch,
    ids: list[str],
    missing: list[str],
) -> dict[str, Any]:
    killed: float = state.get("killed", 0.0)
    before: Records = state.get("before", {})
    after = watch.after
    lost = [j for j in ids if before.get(j, (None,))[0] and after.get(j, (None,))[0] is None]
    stale = [
        j
        for j in ids
        if (b := before.get(j, (None, None))[1]) and (a := after.get(j, (None, None))[1]) and a < b
    ]
    r = stack.client()
    done = [float(x) for x in (r.hget(f"{PREFIX}:job:{j}", "completed_at") for j in ids) if x]
    r.close()
    later = [t for t in done if killed and t > killed]
    switched = watch.switches[-1][0] if watch.switches else None
    all_done = len(done) == len(ids)
    role = "?"
    if state.get("last_old"):  # the last master killed (of two failovers, the second)
        old = redis.Redis(port=state["last_old"], decode_responses=True)
        cluster.wait_until(
            lambda: str(old.info("replication").get("role")) == "slave", 30, "the old master"
        )
        role = str(old.info("replication")["role"])
        old.close()
    return {
        "switch_seconds": round(watch.at - killed, 1) if watch.at and killed else None,
        "recovery_seconds": round(min(later) - killed, 1) if later and killed else None,
        "last_done_after_switch": (
            round(max(later) - switched, 1) if later and switched and all_done else None
        ),
        "replica_bytes_behind": state.get("behind"),
        "records_lost": len(lost),
        "records_stale": len(stale),
        "records_missing": len(missing),
        "sweeps": stack.sweeps(),
        "old_master_role": role,
    }


MB = 1024 * 1024


def failover_during_transfers(
    stack: Stack, cluster: SentinelSet, jobs: int, *, timeout: float, lifecycle: dict[str, Any]
) -> FailoverFigures:
    """A Sentinel failover while results are downloaded from Akool and uploaded to S3 (moto,
    behind a FaultProxy). Half the downloads are slowed 4 s by the sandbox; once a job is
    downloading, the proxy holds S3's answers, and the master is SIGKILLed when an upload has
    gone up unanswered (both in flight); S3 answers again at the Sentinels' switch. Two
    prefork workers, no beat, the stack's settings."""
    s3 = stack.object_store("audio-results", "tts")
    proxy = stack.fault_proxy(s3.port)
    stack.sandbox.configure(
        audio_bytes=MB,
        faults=[{"endpoint": "download", "kind": "slow", "delay": 4.0, "probability": 0.5}],
    )
    held: list[int] = []  # upstream bytes when S3's answers began to be held

    def states() -> dict[str, int]:
        r = stack.client()
        keys = list(r.scan_iter(match=f"{PREFIX}:job:failover-*"))
        out: dict[str, int] = {}
        for state in (r.hget(k, "state") for k in keys):
            out[str(state)] = out.get(str(state), 0) + 1
        r.close()
        return out

    def ready() -> bool:
        if not held:
            if states().get("downloading", 0) == 0:
                return False
            held.append(proxy.upstream_bytes)
            proxy.hold_answers_after(0)
            return False
        return proxy.upstream_bytes > held[0] and states().get("downloading", 0) > 0

    def before_kill() -> str:
        # botocore sends a file's PUT with `Expect: 100-continue`: the body follows S3's answer,
        # so a held upload has sent its headers and waits.
        return (f"at the kill: jobs by state {states()}; {proxy.upstream_bytes - held[0]} bytes "
                "went up to S3 unanswered (requests whose answers the proxy holds)")  # fmt: skip

    def after_switch() -> str:
        proxy.heal()
        return f"S3 answers again; {proxy.upstream_bytes - held[0]} bytes went up while held"

    return sentinel_failover(
        stack, cluster, jobs, at=4.0, timeout=timeout, restart_after=10.0, with_beat=False,
        scenario="sentinel_failover_transfers", lifecycle=lifecycle,
        worker_env=s3.worker_env(proxy.url), before_kill=before_kill, after_switch=after_switch,
        read=s3.read, ready=ready,
        fault="a download (half slowed 4 s) and an S3 upload (answers held) in flight",
    )  # fmt: skip
