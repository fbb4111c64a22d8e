"""Figures to a table: targets checked, ratios derived, and docs/PERFORMANCE.md rendered."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

NOTES = Path(__file__).with_name("notes.md")  # the analysis, written by hand after a run


def _get(fig: dict[str, Any], *path: str) -> Any:
    cur: Any = fig
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


def derive(fig: dict[str, Any]) -> None:
    """Ratios between figures of the same run."""
    ceiling = _get(fig, "ceiling", "tasks_per_s")
    tput = _get(fig, "throughput", "jobs_per_s")
    tasks = _get(fig, "throughput", "tasks_per_job")
    if ceiling and tput and tasks:
        fig["throughput"]["efficiency"] = round(tput / (ceiling / tasks), 2)


def rows(fig: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) for every figure with a target, then the rest."""
    out: list[tuple[str, str, str, str]] = []

    def add(name: str, value: Any, target: str = "", ok: bool | None = None) -> None:
        if value is None:
            return
        verdict = "" if ok is None else ("met" if ok else "MISSED")
        out.append((name, str(value), target, verdict))

    def g(*path: str) -> Any:
        return _get(fig, *path)

    add("1 no-op Celery tasks/s (ceiling)", g("ceiling", "tasks_per_s"))
    add("1 Redis commands per no-op task", g("ceiling", "redis_cmds_per_task"))
    add("2 pipeline jobs/s (sandbox immediate)", g("throughput", "jobs_per_s"))
    add("2 tasks per job", g("throughput", "tasks_per_job"))
    add("2 Redis commands per job", g("throughput", "redis_cmds_per_job"))
    eff = g("throughput", "efficiency")
    add("2 efficiency = jobs/s / (ceiling / tasks per job)", eff, ">= 0.6",
        None if eff is None else eff >= 0.6)  # fmt: skip
    ratio = g("baseline", "throughput_ratio")
    add("3 ours jobs/s, ~10 s jobs", g("baseline", "ours", "jobs_per_s"))
    add("3 naive jobs/s (sleep+poll 5 s)", g("baseline", "naive", "jobs_per_s"))
    add("3 throughput ratio ours / naive", ratio, ">= 50x", None if ratio is None else ratio >= 50)
    add("3 API calls per job, ours / naive",
        _pair(g("baseline", "ours", "api_calls_per_job"),
              g("baseline", "naive", "api_calls_per_job")))  # fmt: skip
    p = g("polling", "without_webhooks") or {}
    if p:
        add("4 job duration at the sandbox, median s", p.get("duration_median_s"))
        add("4 polls per job, median (learned)", p.get("polls_median"), "<= 3",
            p.get("polls_median", 99) <= 3)  # fmt: skip
        add(
            "4 polls per job, p95 (learned)",
            p.get("polls_p95"),
            "<= 6",
            p.get("polls_p95", 99) <= 6,
        )
        share = p.get("delay_share_median")
        ok = share is not None and share <= 0.10
        add("4 detection delay median, s / share of duration",
            _pair(p.get("delay_median_s"), share), "<= 10%", ok)  # fmt: skip
        add("4 detection delay p95, s", p.get("delay_p95_s"))
        cold = p.get("cold_start") or {}
        add("4 cold start (no history): polls median / delay share",
            _pair(cold.get("polls_median"), cold.get("delay_share_median")))  # fmt: skip
    hooks = g("polling", "with_webhooks")
    if isinstance(hooks, str):
        add("4 with webhooks", hooks, "<= 0.5 s", None)
    elif isinstance(hooks, dict):
        d = hooks.get("delay_median_s")
        add("4 with webhooks: detection delay median / p95, s",
            _pair(d, hooks.get("delay_p95_s")), "<= 0.5 s", d is not None and d <= 0.5)  # fmt: skip
        add("4 with webhooks: polls per job median / p95",
            _pair(hooks.get("polls_median"), hooks.get("polls_p95")))  # fmt: skip
    c = g("capacity") or {}
    if c:
        add("5 jobs sent / peak in flight", _pair(c.get("jobs"), c.get("peak_in_flight")))
        add("5 worker RSS idle / peak, MB",
            _pair(c.get("worker_rss_idle_mb"), c.get("worker_rss_peak_mb")), "<= 300 MB",
            (c.get("worker_rss_peak_mb") or 1e9) <= 300)  # fmt: skip
        add("5 worker / Redis memory per job in flight, KB",
            _pair(c.get("worker_kb_per_job"), c.get("redis_kb_per_job")))  # fmt: skip
        lag = c.get("poll_lag_p95_s")
        add("5 poll lag p50 / p95 / max, s",
            f"{c.get('poll_lag_p50_s')} / {lag} / {c.get('poll_lag_max_s')}", "p95 <= 2 s",
            lag is not None and lag <= 2)  # fmt: skip
        add("5 succeeded within the window", _pair(c.get("succeeded"), c.get("window_s")))
    d = g("download") or {}
    if d:
        add("6 100 MB download: MB/s", d.get("mb_per_s"))
        growth = d.get("peak_rss_growth_mb")
        add("6 peak RSS growth, MB", growth, "<= 20 MB", growth is not None and growth <= 20)
    pools = g("pools") or {}
    for label, v in pools.items():
        if isinstance(v, dict):
            add(f"7 {label}: jobs/s, RSS MB ({pools.get('latency_s')} s per API call)",
                _pair(v.get("jobs_per_s"), v.get("worker_rss_mb")))  # fmt: skip
    st = g("storage") or {}
    for size in ("1mb", "100mb"):
        r = st.get(size)
        if not isinstance(r, dict):
            continue
        ours, base, mb = r.get("ours") or {}, r.get("baseline") or {}, r.get("mb")
        add(f"8 {mb} MB upload, MB/s: ours / boto3 upload_file",
            _pair(ours.get("mb_per_s"), base.get("mb_per_s")))  # fmt: skip
        ratio = r.get("ratio")
        add(f"8 {mb} MB upload, throughput ratio ours / boto3", ratio, ">= 0.9",
            None if ratio is None else ratio >= 0.9)  # fmt: skip
        growth = ours.get("peak_rss_growth_mb")
        pair = _pair(growth, base.get("peak_rss_growth_mb"))
        if size == "100mb":
            add(f"8 {mb} MB upload, peak RSS growth MB: ours / boto3", pair, "ours <= 20 MB",
                growth is not None and growth <= 20)  # fmt: skip
        else:
            add(f"8 {mb} MB upload, peak RSS growth MB: ours / boto3", pair)
    for variant, label in (("ours_c10", "max_concurrency 10"), ("ours_no_head", "no HEAD")):
        small, big = _get(st, "1mb", variant) or {}, _get(st, "100mb", variant) or {}
        if small or big:
            add(
                f"8 ours with {label} (not shipped): ratio 1 MB / 100 MB, 100 MB RSS growth MB",
                f"{small.get('ratio')} / {big.get('ratio')}, {big.get('peak_rss_growth_mb')}",
            )
    _web_rows(g("web") or {}, add)
    _timeline_rows(g("timeline"), add)
    return out


Add = Callable[..., None]
#: The list route's lines: (figure key, what was asked).
LIST_QUERIES = (
    ("newest", "GET /v1/jobs?limit=50"),
    ("state", "GET /v1/jobs?limit=50&state=failed"),
    ("prefix", "GET /v1/jobs?limit=50&q={q}"),
    ("paging", "GET /v1/jobs?limit=50&cursor= (pages 2-5)"),
    ("detail", "GET /v1/jobs/{{id}}"),
)


def _web_rows(w: dict[str, Any], add: Add) -> None:
    i = w.get("intake") or {}
    if i:
        post, task = i.get("post") or {}, i.get("send_task") or {}
        add(f"9 POST /v1/jobs / send_task per s ({i.get('threads')} client threads, no worker)",
            _pair(post.get("per_s"), task.get("per_s")))  # fmt: skip
        add("9 intake ratio POST /v1/jobs / send_task", i.get("ratio"))
        add("9 latency p50 / p95 ms: POST /v1/jobs; send_task",
            f"{post.get('p50_ms')} / {post.get('p95_ms')}; "
            f"{task.get('p50_ms')} / {task.get('p95_ms')}")  # fmt: skip
    lst = w.get("list") or {}
    if not lst:
        return
    small, big = lst.get("baseline") or 0, lst.get("records") or 0
    for key, label in LIST_QUERIES:
        a, b = _get(lst, "at_baseline", key, "p95_ms"), _get(lst, "at_records", key, "p95_ms")
        ratio = _get(lst, "p95_ratio", key)
        add(f"9 {label.format(q=lst.get('q'))}: p95 ms at {small:,} / {big:,} records (ratio)",
            None if a is None and b is None else f"{a} / {b} ({ratio})")  # fmt: skip


def _timeline_rows(t: Any, add: Add) -> None:
    if isinstance(t, str):
        add("10 timeline cost", t)
        return
    if not isinstance(t, dict):
        return
    base, cur = t.get("base") or {}, t.get("current") or {}
    label = f"base {t.get('base_commit')} / current, mean of {t.get('rounds')} runs each"
    add(f"10 pipeline jobs/s ({label})", _pair(base.get("jobs_per_s"), cur.get("jobs_per_s")))
    ratio = t.get("ratio")
    add("10 timeline cost: jobs/s ratio current / base (per round)",
        f"{ratio} ({', '.join(map(str, t.get('ratio_rounds') or []))})", ">= 0.9",
        None if ratio is None else ratio >= 0.9)  # fmt: skip
    add("10 Redis commands per job: base / current",
        _pair(base.get("redis_cmds_per_job"), cur.get("redis_cmds_per_job")))  # fmt: skip
    add("10 timeline events per job: base / current",
        _pair(base.get("events_per_job"), cur.get("events_per_job")))  # fmt: skip


def _pair(a: Any, b: Any) -> str | None:
    return None if a is None and b is None else f"{a} / {b}"


def table(fig: dict[str, Any]) -> str:
    data = [("measure", "figure", "target", ""), *rows(fig)]
    widths = [max(len(r[i]) for r in data) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in data]
    lines.insert(1, "  ".join("-" * w for w in widths))
    head = f"{fig.get('machine')}; worker {fig.get('worker')}; {fig.get('seconds')} s in all"
    return head + "\n" + "\n".join(lines)


def markdown(fig: dict[str, Any]) -> str:
    md = ["| measure | figure | target | |", "| --- | --- | --- | --- |"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(fig)]
    timeline = _get(fig, "capacity", "timeline")
    return TEMPLATE.format(
        command=fig.get("command"),
        started=fig.get("started"),
        machine=fig.get("machine"),
        worker=fig.get("worker"),
        seconds=fig.get("seconds"),
        table="\n".join(md),
        timeline=json.dumps(timeline) if timeline else "(capacity not run)",
        storage=_storage_text(fig),
        web_line=_web_text(fig),
        timeline_line=_timeline_text(fig),
        notes=NOTES.read_text() if NOTES.exists() else "",
    )


def _storage_text(fig: dict[str, Any]) -> str:
    """Line 8's description, naming the transfer settings and versions the run used."""
    st = _get(fig, "storage") or {}
    ours = _get(st, "100mb", "ours", "settings") or "`worker.storage.s3.TRANSFER`"
    base = _get(st, "100mb", "baseline", "settings") or "its defaults"
    moto = f"moto {st['moto']}" if st.get("moto") else "moto"
    boto3 = f"boto3 {st['boto3']}" if st.get("boto3") else "boto3"
    runs = st.get("runs", 3)
    variants = ""
    if _get(st, "100mb", "ours_c10"):
        variants = (
            " The full run also measures two variants of ours that are not shipped: with "
            "`max_concurrency` 10 (boto3's default), and without the HEAD before a multipart "
            "upload and the ListMultipartUploads after it."
        )
    text = (
        f"8. **Storage**: a 1 MB and a 100 MB file of random bytes uploaded to {moto}'s S3 "
        "server (in its own process on loopback, plain HTTP, fake credentials). Ours is "
        "`open_store(...).put(...)` of a staged copy, as the pipeline does it (path-style "
        f"addressing; {ours}; below 8 MB one conditional PUT, above it a HEAD before the "
        "multipart upload and a ListMultipartUploads after it); the baseline is "
        '`boto3.client("s3").upload_file` of the same file '
        f"with {boto3}'s defaults ({base}). Every upload runs in a fresh process: seconds are "
        f"those of a first upload on a new connection, the best of {runs} runs with the paths "
        "interleaved; peak RSS growth is the change of `VmHWM` around the upload, the largest "
        "of the runs. The ratio is ours MB/s over boto3's. Client and server share the two "
        "cores and no network is crossed, so this shows what each path costs on its own, not "
        "what more parts in flight would gain over a real network."
    )
    return textwrap.fill(text + variants, width=96, subsequent_indent="   ")


def _separately(fig: dict[str, Any], name: str) -> str:
    """How a line measured on its own (``python -m bench --only ... --merge``) was run."""
    run = _get(fig, "separately", name)
    if not isinstance(run, dict):
        return ""
    argv = " ".join(run.get("argv") or [])
    return (
        f" Measured on its own, not in the run above: `python -m bench {argv}` "
        f"({run.get('started')}; worker `{run.get('worker')}`)."
    )


def _web_text(fig: dict[str, Any]) -> str:
    """Line 9's description, with the sizes the run used."""
    i, lst = _get(fig, "web", "intake") or {}, _get(fig, "web", "list") or {}
    server = str(i.get("server") or "")
    shown = f"`{server}`" if server else "the Procfile's `web` command"
    if server.startswith("gunicorn"):
        shown += " (gunicorn with worker/web/gunicorn_conf.py: one process of 4 threads)"
    text = (
        f"9. **Web service**: the real service as a process, {shown}, "
        "with a Bearer token. Intake: `POST /v1/jobs` per second from "
        f"{i.get('threads', 8)} client threads, each with its own keep-alive connection, beside "
        '`send_task("audio.create", ...)` per second from a bare Celery app in the same number '
        f"of threads, both against the same private Redis, {i.get('rounds', 2)} alternating "
        f"rounds of {i.get('per_thread', '?')} requests per thread each; no worker consumes "
        "(intake only). Latency is per request as the client sees it. The list route: one "
        "client thread, p95 of each query with "
        f"{lst.get('baseline', 1000):,} job records in Redis, then with "
        f"{lst.get('records', 100_000):,} ({lst.get('samples', '?')} samples each; paging is "
        "pages 2-5 by cursor; the detail is a random job). The records are seeded by the job "
        "scripts `JobStore.create` and `JobStore.fail` run, pipelined in batches of 1,000, one "
        "in five failed; the ratio is p95 at the larger size over p95 at the smaller."
    )
    return textwrap.fill(text + _separately(fig, "web"), width=96, subsequent_indent="   ")


def _timeline_text(fig: dict[str, Any]) -> str:
    """Line 10's description, with the sizes the run used."""
    t = _get(fig, "timeline")
    t = t if isinstance(t, dict) else {}
    text = (
        "10. **Timeline**: line 2's measurement (jobs sent at once, the sandbox finishing at "
        f"create, one worker `{t.get('worker', 'as above')}`), {t.get('jobs', '?')} jobs a run, "
        "with the worker started from a git worktree of the commit before the timeline "
        f"(`--timeline-base`, {t.get('base_commit', 'see bench/notes.md')}) and from this "
        f"tree, alternating base, current, base, current ({t.get('rounds', '?')} runs each), "
        "against one sandbox and a fresh Redis each run; jobs/s are the mean of each side's "
        "runs. Events per job are the lengths of the finished jobs' timelines. Everything else "
        "that changed in the pipeline since the base commit is in the comparison too."
    )
    return textwrap.fill(text + _separately(fig, "timeline"), width=96, subsequent_indent="    ")


TEMPLATE = """# Performance

Figures of the last run of `{command}` ({started}; {machine}; one worker, `{worker}`;
{seconds} s in all). `make bench` runs `python -m bench`; `python -m bench --quick` is a smaller
run. Every benchmark starts its own redis-server, the sandbox as a process and real
`celery worker` processes on loopback (the storage one: moto's S3 server and one process per
upload); ratios are taken between figures of the same run. The
machine is shared with other work, so absolute figures are noisy: read the ratios. All figures
are in `bench/results/latest.json`.

{table}

Capacity timeline (seconds since the first send, jobs in flight, of them overdue by > 2 s,
worker RSS MB): {timeline}

## What each line measures

1. **Ceiling**: `bench.noop` tasks (a no-op, `celery -A bench.noop`) with the pipeline's own
   Celery settings (late acks, events, results, prefetch 1) and the same worker; all sent first.
2. **Throughput**: `audio.create` jobs sent by a bare caller app, the sandbox finishing at
   create; jobs/s from the first send to the last completion event. Tasks per job are Redis
   `LPUSH` calls (one per published message) per job; Redis commands come from
   `INFO commandstats` (commands run inside our Lua scripts count too).
3. **Baseline**: the loop of Akool's demos as one task (`bench/naive.py`: create, `sleep(5)`,
   poll, download) against our pipeline; same worker, jobs of 10 s +/- 10 % at the sandbox.
   Ours runs 1,000 jobs; the naive one twice its concurrency (more would only take longer: it
   finishes `concurrency` jobs per ~10-15 s whatever the backlog).
4. **Polling**: jobs arrive at 2/s with 20-380 words; the sandbox takes `(8 s + 25 ms/word)`
   times lognormal(0, 0.25), about 13 s. Polls are our job record's count; detection delay is
   our `detected_at` (the poll that saw status 3) minus the sandbox's `completed_at`. "Learned"
   leaves out the jobs of the first 25 s, sent before any history existed (the cold start,
   shown apart).
5. **Capacity**: all jobs sent at once, the sandbox taking 120 s +/- 10 %; the estimator's history
   is seeded (as a running system would have it), so the first poll lands near 110 s. Poll
   lag is each job's worst `actual - planned` poll time (`poll_lag_max` on the job record);
   memory per job is the growth of worker RSS and Redis `used_memory` over the jobs in flight.
6. **Download**: `worker.egress.download.download` in a fresh process; peak RSS growth is the
   change of `VmHWM`.
7. **Pools**: throughput with every Akool call made 0.2 s slow at the sandbox (as a real API
   is), per pool and concurrency, with the worker's total RSS.
{storage}
{web_line}
{timeline_line}

## Reading the figures

{notes}
"""
