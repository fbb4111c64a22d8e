"""(16) What one poll costs, before and after this round's work on the poll path, in one run:
N jobs that Akool never finishes, each polled every ~5 s (every wait parked, as the defaults
park any wait over ``POLL_PARK_THRESHOLD``), through the Procfile's layout, with the workers
started from a git worktree of ``BASE`` and from this tree, alternating. The poller is
saturated (N / 5 polls/s asked), so polls/s is its capacity, and CPU per poll is what each
process (poller, intake worker, Redis, sandbox) pays for one."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import procfile, timeline
from bench.jobs import send_create, text_of
from bench.stack import ROOT, Stack

BASE = "63dfd39"  # issue 14 as first built: a new message per parked poll, Celery's Ignore
WORKTREE = Path(tempfile.gettempdir()) / "bench-base-pollcost"
EVERY = 5.0  # POLL_INITIAL_DELAY = POLL_MAX_DELAY: a fixed wait, above the park threshold


def measure(root: Path, n: int, window: float, warmup: float) -> dict[str, Any]:
    rng = random.Random(16)
    with Stack("pollcost") as st:
        st.sandbox.configure(
            lifecycle={"mode": "duration", "base_seconds": 1e6, "per_word_seconds": 0.0,
                       "lognormal_sigma": 0.0},
        )  # fmt: skip
        env = st.env(POLL_INITIAL_DELAY=str(EVERY), POLL_MAX_DELAY=str(EVERY),
                     PYTHONPATH=str(root))  # fmt: skip
        workers = procfile.start(st, env, cwd=root)
        for _ in range(n):
            send_create(st.caller, text_of(12, rng))
        time.sleep(warmup)
        polls0 = _polls(st)
        cpu0 = procfile.cpu(st, workers)
        t0 = time.time()
        time.sleep(window)
        elapsed = time.time() - t0
        polls = _polls(st) - polls0
        cpu1 = procfile.cpu(st, workers)
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    return {
        "polls_per_s": round(polls / elapsed, 1),
        "cpu_ms_per_poll": {k: round(1000 * v / max(1, polls), 2) for k, v in cpu.items()},
    }


def _polls(st: Stack) -> int:
    return int(st.sandbox.stats()["requests"].get("detail", 0))


def run(n: int = 1000, window: float = 30.0, rounds: int = 2, base: str = BASE) -> dict[str, Any]:
    try:
        full = timeline.add_worktree(base, WORKTREE)
    except (OSError, RuntimeError) as exc:
        return {"not_measured": f"no checkout of {base} ({exc})"}
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "current": []}
    try:
        for _ in range(rounds):
            for side, root in (("base", WORKTREE), ("current", ROOT)):
                runs[side].append(measure(root, n, window, warmup=15.0))
    finally:
        timeline.remove_worktree(WORKTREE)
    out: dict[str, Any] = {"base_commit": full[:12], "jobs": n, "asked_polls_per_s": n / EVERY,
                           "window_s": window, "rounds": rounds}  # fmt: skip
    for side, rs in runs.items():
        procs = rs[0]["cpu_ms_per_poll"].keys()
        out[side] = {
            "polls_per_s": round(statistics.mean(r["polls_per_s"] for r in rs), 1),
            "polls_per_s_runs": [r["polls_per_s"] for r in rs],
            "cpu_ms_per_poll": {
                k: round(statistics.mean(r["cpu_ms_per_poll"][k] for r in rs), 2) for k in procs
            },
        }
    b, c = out["base"], out["current"]
    out["poller_cpu_ratio_current_over_base"] = round(
        c["cpu_ms_per_poll"]["poller"] / b["cpu_ms_per_poll"]["poller"], 3
    )
    out["polls_per_s_ratio_current_over_base"] = round(c["polls_per_s"] / b["polls_per_s"], 3)
    return out
