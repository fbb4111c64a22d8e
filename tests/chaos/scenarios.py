"""The fault scenarios of the reliability issue, sized by the caller.

``tests/chaos/test_chaos.py`` runs them at full size (``make chaos``);
``tests/integration/test_reliability.py`` runs a reduced version inside ``make test``. Each
returns :class:`~tests.support.harness.Figures`; the caller asserts and records them.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery.result import AsyncResult

from tests.support.harness import Figures, Stack
from tests.support.tcpproxy import TcpProxy

# Realistic Akool timing: done after about 1 s plus 20 ms a word, polled with backoff.
LIFECYCLE = {"mode": "duration", "base_seconds": 1.0, "per_word_seconds": 0.02, "jitter": 0.3}
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
) -> Figures:
    """One worker (``victim``) reaches Redis through a TCP proxy, another directly. At ``at`` s
    ``begin`` breaks the proxy (and says how); after ``down`` s it heals (None: never). Then the
    direct worker stops and ``probe`` more jobs must be done by the victim alone: it recovered
    by itself."""
    stack.sandbox.configure(lifecycle=LIFECYCLE, seed=seed)
    proxy = stack.proxy()
    stack.worker(victim, redis_url=proxy.url(), env=env)
    direct = stack.worker("direct", env=env)
    ids = stack.enqueue(jobs, scenario)
    phase: list[str] = []

    def tick(elapsed: float, final: int) -> None:
        if not phase and elapsed >= at:
            stack.note(f"{begin(proxy)} ({final}/{jobs} final)")
            phase.append("broken")
        elif phase == ["broken"] and down is not None and elapsed >= at + down:
            proxy.heal()
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
    return fig


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
    stack: Stack, jobs: int, *, at: float, timeout: float, probe: int = 5
) -> Figures:
    """Every connection the worker has to Redis goes silent for good (a NAT or load balancer
    forgot them); new connections work. Only the worker's own timeouts can notice.

    A worker whose publish of a chain's next step times out records a failure (Celery, outside
    the task body): that job's next step is lost, and only the sweeper resumes it. So this
    scenario runs beat, as production does, and reports what the sweep did.

    The time limit is 40 s here, not 10: a step blocked on a dead connection waits for the 20 s
    socket timeout, and a hard time limit below that kills it and drops its message (an entry
    task's, before its record exists: the job is gone). Production's is 300 s."""
    env = {"TASK_TIME_LIMIT": "40", "VISIBILITY_TIMEOUT": "165"}
    stack.beat(SWEEP_INTERVAL="5", **env)

    def strand(proxy: TcpProxy) -> str:
        return f"{proxy.strand()} connections stranded"

    fig = _network_fault(
        stack,
        jobs,
        scenario="redis_half_open",
        fault="every Redis connection of one worker silent for good (half-open), new ones "
        "work; beat running; TASK_TIME_LIMIT 40 s",
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
    fig.notes.append(f"beat's sweep (every 5 s, grace 3 s) acted on: {stack.sweeps() or 'none'}")
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
