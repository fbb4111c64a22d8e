"""``python -m bench [--quick]``: every benchmark in one run, a table, bench/results/latest.json
and docs/PERFORMANCE.md. Ratios are taken between figures of this same run."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bench import (
    baseline,
    callbacks,
    capacity,
    dispatch,
    download,
    efficiency,
    engine,
    memory,
    pollcost,
    polling,
    report,
    slowclients,
    storage,
    timeline,
    web,
)
from bench.engine import WorkerSpec

RESULTS = Path(__file__).with_name("results") / "latest.json"
DOC = Path(__file__).resolve().parents[1] / "docs" / "PERFORMANCE.md"
SCENARIOS = (
    "ceiling",
    "throughput",
    "baseline",
    "polling",
    "capacity",
    "download",
    "pools",
    "storage",
    "web",
    "timeline",
    "memory",
    "dispatch",
    "efficiency",
    "webhooks",
    "pollcost",
    "slowclients",
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="smaller runs (about 7 minutes)")
    p.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    p.add_argument("--pool", default="threads", help="the worker pool for every scenario")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--capacity-jobs", type=int, default=None, help="default 10000 (2000 quick)")
    p.add_argument(
        "--capacity-pollers",
        type=int,
        default=1,
        help="also run line 5's defaults with this many poller processes",
    )
    p.add_argument(
        "--capacity-compare",
        default="yes",
        choices=("yes", "no"),
        help="also run line 5 with every wait a countdown (the previous design)",
    )
    p.add_argument("--web-records", type=int, default=100_000, help="job records for the list")
    p.add_argument(
        "--timeline-base",
        default=timeline.BASE,
        help="the commit before the timeline, measured against this tree (%(default)s)",
    )
    p.add_argument(
        "--efficiency-base",
        default=efficiency.BASE,
        help="the commit before issue 14, measured against this tree (%(default)s)",
    )
    p.add_argument(
        "--memory-sizes",
        default=None,
        help="jobs waiting, comma-separated (default 1000,10000,100000; quick 1000,10000,30000)",
    )
    p.add_argument("--dispatch-polls", type=int, default=None, help="default 100000 (20000 quick)")
    p.add_argument(
        "--slow-sizes",
        default=None,
        help="line 16: hold seconds,slow heads,slow bodies,idle sockets (default 15,20,20,300; "
        "quick 8,10,10,100)",
    )
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument(
        "--merge",
        action="store_true",
        help="write the last run's figures with this run's scenarios replaced",
    )
    args = p.parse_args(argv)
    q = args.quick
    spec = WorkerSpec(args.pool, args.concurrency)
    only = set(args.only.split(","))
    fig: dict[str, Any] = {
        "command": "make bench" if not q else "python -m bench --quick",
        "argv": sys.argv[1:] if argv is None else argv,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()}, {_cores()} cores, Python {platform.python_version()}",
        "worker": spec.label(),
        "quick": q,
    }
    t0 = time.time()

    def step(name: str, fn: Any) -> None:
        if name in only:
            print(f"-- {name} ...", file=sys.stderr, flush=True)
            t = time.time()
            fig[name] = fn()
            print(f"   {json.dumps(fig[name])[:300]} ({time.time() - t:.0f} s)", file=sys.stderr)

    step("ceiling", lambda: engine.ceiling(spec, 1000 if q else 3000))
    step("throughput", lambda: engine.throughput(spec, 200 if q else 600))
    step("baseline", lambda: baseline.compare(spec, 300 if q else 1000, 2 * spec.concurrency))
    step("polling", lambda: _polling(spec, q))
    n_cap = args.capacity_jobs or (2000 if q else 10_000)
    step("capacity", lambda: capacity.run(n_cap, max_window=400 if q else 900,
                                          compare=args.capacity_compare == "yes",
                                          pollers=args.capacity_pollers))  # fmt: skip
    step("download", download.run)
    step("pools", lambda: engine.pools(120 if q else 250, latency=0.2))
    step("storage", lambda: storage.run(q))
    step("web", lambda: web.run(per_thread=150 if q else 400, samples=100 if q else 200,
                                records=args.web_records))  # fmt: skip
    step("timeline", lambda: timeline.run(spec, 300 if q else 600, 3, args.timeline_base))
    sizes = args.memory_sizes or ("1000,10000,30000" if q else "1000,10000,100000")
    step("memory", lambda: memory.run(tuple(int(x) for x in sizes.split(","))))
    n_due = args.dispatch_polls or (20_000 if q else 100_000)
    step("dispatch", lambda: dispatch.run(n_due))
    step("efficiency", lambda: efficiency.run(spec, 1000 if q else 3000, 300 if q else 600,
                                              2, args.efficiency_base))  # fmt: skip
    step("webhooks", lambda: callbacks.run(warmup=40, n=60 if q else 120))
    step("pollcost", lambda: pollcost.run(1000, window=20 if q else 30, rounds=1 if q else 2))
    hold, heads, bodies, idle = (float(x) for x in (args.slow_sizes or (
        "8,10,10,100" if q else "15,20,20,300")).split(","))  # fmt: skip
    step("slowclients", lambda: slowclients.run(hold, int(heads), int(bodies), int(idle),
                                                per_thread=80 if q else 200,
                                                rounds=2 if q else 3))  # fmt: skip
    fig["seconds"] = round(time.time() - t0)
    report.derive(fig)
    print(report.table(fig))
    if args.merge and RESULTS.exists():
        fig = _merge(json.loads(RESULTS.read_text()), fig, only)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(fig, indent=2, sort_keys=True) + "\n")
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(report.markdown(fig))
        print(f"wrote {RESULTS} and {DOC}", file=sys.stderr)
    return 0


def _merge(last: dict[str, Any], fig: dict[str, Any], only: set[str]) -> dict[str, Any]:
    """``last`` with the figures of the scenarios run now, and when and how they were run."""
    run = {k: fig[k] for k in ("started", "argv", "machine", "worker")}
    for name in SCENARIOS:
        if name in only and name in fig:
            last[name] = fig[name]
            last.setdefault("separately", {})[name] = run
    report.derive(last)
    return last


def _polling(spec: WorkerSpec, quick: bool) -> dict[str, Any]:
    n, rate = (80, 2.0) if quick else (160, 2.0)
    out: dict[str, Any] = {"without_webhooks": polling.run(spec, n, rate, warmup=int(rate * 25))}
    if polling.webhooks_available():
        out["with_webhooks"] = polling.run(spec, n, rate, int(rate * 25), webhooks=True)
    else:
        out["with_webhooks"] = "not measured: worker/web/webhook.py (the receiver) is not there yet"
    return out


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    raise SystemExit(main())
