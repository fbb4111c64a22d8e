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
    """Waits for a Sentinel's ``+switch-master`` and at once reads the job records from the
    new master, before any worker has found it."""

    def __init__(self, sentinel_port: int, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.sentinel_port = sentinel_port
        self.ids = ids
        self.at: float | None = None
        self.new_port: int | None = None
        self.after: Records = {}
        self.ready = threading.Event()

    def run(self) -> None:
        r = redis.Redis(port=self.sentinel_port, decode_responses=True)
        sub = r.pubsub()  # type: ignore[no-untyped-call]
        sub.subscribe("+switch-master")
        self.ready.set()
        for message in sub.listen():
            if message["type"] != "message":
                continue
            self.at = time.time()
            self.new_port = int(str(message["data"]).split()[-1])
            self.after = records(redis.Redis(port=self.new_port, decode_responses=True), self.ids)
            break
        sub.close()
        r.close()


def _applied(port: int) -> int:
    r = redis.Redis(port=port, decode_responses=True)
    try:
        return int(r.info("replication")["slave_repl_offset"])
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
) -> FailoverFigures:
    """Two workers (``pool``) and, ``with_beat``, beat (its sweep every 5 s) on the Sentinels;
    ``jobs`` jobs; ``at`` s later the master is SIGKILLed; ``restart_after`` s after the switch
    it starts again (it comes back as a replica of the new master). ``first_sentinel_down``:
    the first Sentinel of REDIS_URL is stopped before anything starts, and stays down."""
    # Akool takes 6 to 10 s per job here, so that most jobs are in flight at the kill.
    stack.sandbox.configure(lifecycle=lifecycle or SLOW_LIFECYCLE, seed=11)
    if first_sentinel_down:
        cluster.sentinels[0].stop()
        stack.note("first Sentinel of REDIS_URL stopped before the workers start")
    stack.worker("w1", pool=pool)
    stack.worker("w2", pool=pool)
    if with_beat:
        stack.beat(SWEEP_INTERVAL="5")
    ids = stack.enqueue(jobs, "failover")
    watch = SwitchWatch(cluster.sentinels[-1].port, ids)
    watch.start()
    watch.ready.wait(5)
    state: dict[str, Any] = {}

    def tick(elapsed: float, final: int) -> None:
        if "killed" not in state and elapsed >= at:
            old = cluster.master()
            master = redis.Redis(port=old, decode_responses=True)
            before = records(master, ids)
            offset = int(master.info("replication")["master_repl_offset"])
            master.close()
            cluster.by_port(old).kill()
            # What each replica had applied when its master died (it cannot gain more now),
            # against the master's offset read just before: bytes lost with the master, at least.
            behind = [
                max(0, offset - _applied(p.port))
                for p in cluster.data
                if p.port != old and p.alive()
            ]
            state.update(killed=time.time(), old=old, before=before, behind=behind)
            stack.note(f"master :{old} SIGKILLed ({final}/{jobs} final; replicas behind by "
                       f"{behind} bytes)")  # fmt: skip
        elif "killed" in state and "switched" not in state and watch.at is not None:
            state["switched"] = watch.at
            stack.note(f"Sentinels switched to :{watch.new_port}")
        elif (
            "switched" in state
            and "restarted" not in state
            and time.time() >= state["switched"] + restart_after
        ):
            cluster.by_port(state["old"]).start()
            state["restarted"] = time.time()
            stack.note(f"old master :{state['old']} started again")

    wall = stack.wait_final(ids, timeout, tick)
    # Records lost with the master: the caller sends those jobs again (same job_id).
    missing = [j for j, s in stack.states(ids).items() if s is None]
    if missing:
        stack.note(f"{len(missing)} jobs without a record: sent again by the caller")
        stack.send(missing)
        wall += stack.wait_final(missing, timeout)
    if "restarted" not in state and "old" in state:
        cluster.by_port(state["old"]).start()
        state["restarted"] = time.time()
    fig = stack.measure(
        scenario,
        "Redis master SIGKILLed (Sentinel: 3 Sentinels, quorum 2, down-after 1 s), started "
        f"again {restart_after:g} s after the switch"
        + ("; the first Sentinel of REDIS_URL down from the start" if first_sentinel_down else ""),
        f"{jobs} jobs, 2 workers x 2 {'threads' if pool == 'threads' else 'processes'}"
        f"{', beat' if with_beat else ', no beat'}, {len(cluster.data) - 1} replicas",
        ids,
        wall,
    )
    out = FailoverFigures(**fig.as_dict())
    out.failover = _failover_figures(stack, cluster, state, watch, ids, missing)
    f = out.failover
    out.notes += [
        f"switch {f['switch_seconds']} s after the kill; first job completed "
        f"{f['recovery_seconds']} s after the kill; last {f['last_done_after_switch']} s after "
        "the switch",
        f"replication lag at the kill: replicas behind by {f['replica_bytes_behind']} bytes; "
        f"records the new master lacked {f['records_lost']}, held older {f['records_stale']}; "
        f"jobs without a record at the end (sent again) {f['records_missing']}",
        f"jobs resumed by beat's sweep: {f['sweeps']}",
        f"old master back as a replica: {f['old_master_role']}",
    ]
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
    switched = watch.at
    all_done = len(done) == len(ids)
    role = "?"
    if state.get("old"):
        old = redis.Redis(port=state["old"], decode_responses=True)
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
