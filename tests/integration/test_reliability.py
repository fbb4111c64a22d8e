"""The chaos scenarios, reduced to fit ``make test``: one run of 24 jobs with Akool faults, a
worker SIGKILL, a Redis restart and a worker cut off from Redis, all at once (so the
visibility timeout that brings stranded messages back is waited for once); and poison messages.
Full size: tests/chaos (``make chaos``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos import fetchwindow, scenarios
from tests.support.harness import Figures, Stack, write_figures
from tests.support.procs import ROOT


@pytest.fixture()
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.stop()


def record(fig: Figures, tmp_path: Path) -> None:
    out = tmp_path / "reduced.json"
    if os.environ.get("RELIABILITY_RECORD"):
        out = ROOT / "docs" / "reliability" / "reduced.json"
    write_figures(out, fig)


@pytest.mark.timeout(420)
def test_faults_crash_restart_and_cut_lose_nothing(stack: Stack, tmp_path: Path) -> None:
    stack.sandbox.configure(lifecycle=scenarios.LIFECYCLE, faults=scenarios.AKOOL_FAULTS, seed=7)
    proxy = stack.proxy()
    stack.worker("cutoff", redis_url=proxy.url())
    victim = stack.worker("victim")
    jobs = 24
    ids = stack.enqueue(jobs, "reduced")
    done: set[str] = set()

    def tick(elapsed: float, final: int) -> None:
        if elapsed >= 1.5 and "kill" not in done:
            done.add("kill")
            victim.kill()
            stack.note(f"victim SIGKILLed ({final}/{jobs} final)")
            victim.start(timeout=60)
        elif elapsed >= 4 and "redis" not in done:
            done.add("redis")
            stack.restart_redis(down_seconds=1.0)
        elif elapsed >= 7 and "cut" not in done:
            done.add("cut")
            proxy.cut()
            stack.note("proxy cut")
        elif elapsed >= 12 and "heal" not in done:
            done.add("heal")
            proxy.heal()
            stack.note("proxy healed")

    wall = stack.wait_final(ids, 300, tick)
    fig = stack.measure(
        "reduced_all_faults",
        "Akool faults (as akool_faults) + 1 worker SIGKILL + 1 Redis restart + 5 s proxy cut",
        f"{jobs} jobs, 2 workers x 2 processes",
        ids,
        wall,
    )
    record(fig, tmp_path)
    assert fig.lost == 0, fig
    assert fig.worker_exits == 0, fig
    assert fig.succeeded == jobs, fig
    assert fig.sha_mismatch == 0, fig
    # Only an ambiguous create (timed out, or answered garbage after Akool may have acted)
    # can make a second Akool job; each is counted on the job record.
    assert fig.duplicates <= fig.ambiguous_submits, fig


@pytest.mark.timeout(300)
def test_parked_polls_survive_killed_dispatchers(stack: Stack, tmp_path: Path) -> None:
    """make chaos's dispatcher_kill, reduced: 2 kills, a 5 s heartbeat (the full run uses the
    default 20 s)."""
    fig = scenarios.dispatcher_kills(stack, 24, kill_every=3.0, kills=2, timeout=200, heartbeat=5)
    record(fig, tmp_path)
    assert fig.lost == 0, fig
    assert fig.worker_exits == 0, fig
    assert fig.succeeded == 24, fig
    assert "polls dispatched twice for one due time: 0" in fig.notes, fig.notes
    assert "parked polls left: 0" in fig.notes, fig.notes


@pytest.mark.timeout(180)
def test_poison_messages_neither_crash_nor_wedge_a_worker(stack: Stack, tmp_path: Path) -> None:
    fig, seen = scenarios.poison(stack, 5, timeout=60)
    record(fig, tmp_path)
    assert fig.succeeded == fig.jobs == 5, fig
    assert seen["worker_pid_unchanged"] != "False", "the worker died"
    assert seen["args"].startswith("FAILURE") and "positional" in seen["args"]
    assert seen["types"].startswith("FAILURE") and "input_text" in seen["types"]
    assert seen["poll"].startswith("FAILURE")
    assert seen["unknown"].startswith("FAILURE")
    logs = stack.logs()
    assert logs.count("not a valid kombu message") == 2  # not JSON; JSON of the wrong shape
    assert "Can't decode message body" in logs  # a kombu envelope whose body is not JSON
    assert "Unrecoverable error" not in logs
    assert stack.client().hlen("unacked") == 0  # nothing left to come back later


@pytest.mark.timeout(300)
def test_consumers_killed_at_random_lose_no_message(redis_url: str) -> None:
    """The fetch window (tests/chaos/fetchwindow.py), reduced: 20 consumers SIGKILLed at
    random while they drain 6,000 messages (on an idle machine 3,000 were drained after 9
    kills). kombu's BRPOP loses some this way; ours none."""
    fig = fetchwindow.run(redis_url, fetchwindow.OURS, messages=6000, kills=20, seed=11)
    assert fig.kills >= 10, fig  # the kills landed while there was work
    assert fig.lost == 0, fig
    assert fig.delivered == 6000
