"""Figures to a table: targets checked, ratios derived, and docs/PERFORMANCE.md rendered."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import slowclients

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
    _capacity_rows(g("capacity") or {}, add)
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
    _memory_rows(g("memory") or {}, add)
    _dispatch_rows(g("dispatch") or {}, add)
    _efficiency_rows(g("efficiency"), add)
    _webhook_rows(g("webhooks") or {}, add)
    _pollcost_rows(g("pollcost") or {}, add)
    slowclients.rows(g("slowclients") or {}, add)
    return out


Add = Callable[..., None]


def _capacity_rows(c: dict[str, Any], add: Add) -> None:
    p, old = c.get("parked"), c.get("countdown")
    if not isinstance(p, dict):
        return
    add("5 layout (Procfile); AKOOL_RATE_LIMIT", f"{'; '.join(c.get('layout') or [])}; "
        f"{c.get('rate_limit')}/s")  # fmt: skip
    more = c.get("parked_pollers")
    n = more.get("pollers") if isinstance(more, dict) else None
    for label, r in (("defaults (parked)", p), (f"defaults, {n} poller processes", more),
                     ("previous design (all countdowns)", old)):  # fmt: skip
        if not isinstance(r, dict):
            continue
        add(f"5 {label}: jobs sent / succeeded / seconds",
            f"{r.get('jobs')} / {r.get('succeeded')} / {r.get('window_s')}")  # fmt: skip
        lag = r.get("poll_lag_p95_s")
        add(f"5 {label}: poll lag p50 / p95 / max, s ({r.get('polls')} polls)",
            f"{r.get('poll_lag_p50_s')} / {lag} / {r.get('poll_lag_max_s')}", "p95 <= 2 s",
            lag is not None and lag <= 2)  # fmt: skip
        share = r.get("detection_share_p95")
        add(f"5 {label}: detection delay p50 / p95 s; p95 share of duration",
            f"{r.get('detection_delay_p50_s')} / {r.get('detection_delay_p95_s')}; {share}",
            "p95 <= 10%", share is not None and share <= 0.10)  # fmt: skip
        idle, peak = r.get("rss_idle_mb") or {}, r.get("rss_peak_mb") or {}
        add(f"5 {label}: RSS idle / peak MB per process; peak held / parked",
            ", ".join(f"{k} {idle.get(k)} / {v}" for k, v in peak.items())
            + f"; {r.get('peak_held_unacked')} / {r.get('peak_parked')}")  # fmt: skip
        add(f"5 {label}: polls per s, peak planned / peak run (10 s windows)",
            _pair(*(r.get("polls_per_s_peak_planned_ran") or [None, None])))  # fmt: skip
        add(f"5 {label}: worker / Redis KB per job in flight",
            _pair(r.get("worker_kb_per_job"), r.get("redis_kb_per_job")))  # fmt: skip
    ratio = c.get("lag_p95_ratio_countdown_over_parked")
    add("5 poll lag p95 ratio: previous design / defaults", ratio)


def _memory_rows(m: dict[str, Any], add: Add) -> None:
    points = [p for p in m.get("points") or [] if p.get("jobs")]
    if not points:
        return
    sizes = " / ".join(f"{p['jobs']:,}" for p in points)
    add(f"11 worker RSS MB (all processes) at 0 / {sizes} jobs waiting (seeded)",
        " / ".join(str(p["rss_total_mb"]) for p in (m["points"][0], *points)))  # fmt: skip
    slope = m.get("worker_kb_per_job")
    add("11 worker RSS slope, KB per job waiting", slope, "< 1 KB",
        slope is not None and slope < 1)  # fmt: skip
    add(f"11 Redis KB per job in flight at {sizes}",
        " / ".join(str(x) for x in m.get("redis_kb_per_job") or []))  # fmt: skip
    add("11 of which the parked poll (set entry and message), bytes per job",
        m.get("parked_bytes_per_job"))  # fmt: skip


def _dispatch_rows(d: dict[str, Any], add: Add) -> None:
    if not d:
        return
    rate = d.get("polls_per_s")
    label = f"one run_once loop, batch {d.get('batch')}, {d.get('polls'):,} due"
    add(f"12 due polls moved per s ({label})", rate, ">= 5,000/s",
        rate is not None and rate >= 5000)  # fmt: skip
    add("12 Lua call per batch, ms median / max",
        _pair(d.get("batch_ms_median"), d.get("batch_ms_max")))  # fmt: skip


def _efficiency_rows(e: Any, add: Add) -> None:
    if isinstance(e, str):
        add("13 efficiency before / after", e)
        return
    if not isinstance(e, dict):
        return
    b, c = e.get("base") or {}, e.get("current") or {}
    label = f"base {e.get('base_commit')} / current"
    add(f"13 no-op tasks/s ({label}, each its own Celery settings)",
        _pair(b.get("ceiling_tasks_per_s"), c.get("ceiling_tasks_per_s")))  # fmt: skip
    add(f"13 pipeline jobs/s ({label})", _pair(b.get("jobs_per_s"), c.get("jobs_per_s")))
    add(f"13 tasks per job ({label})", _pair(b.get("tasks_per_job"), c.get("tasks_per_job")))
    add(f"13 Redis commands per job ({label})",
        _pair(b.get("redis_cmds_per_job"), c.get("redis_cmds_per_job")))  # fmt: skip
    add(f"13 Redis commands per no-op task ({label})",
        _pair(b.get("redis_cmds_per_noop_task"), c.get("redis_cmds_per_noop_task")))  # fmt: skip
    eff = c.get("efficiency")
    add(f"13 efficiency = jobs/s / (ceiling / tasks per job) ({label})",
        _pair(b.get("efficiency"), eff), ">= 0.6", eff is not None and eff >= 0.6)  # fmt: skip
    add("13 current efficiency against the base's ceiling",
        e.get("current_efficiency_at_base_ceiling"))  # fmt: skip


def _webhook_rows(w: dict[str, Any], add: Add) -> None:
    if not w:
        return
    med = w.get("polls_median")
    add(f"14 with webhooks, after {w.get('warmup_jobs')} warm-up jobs: polls per job median / p95",
        _pair(med, w.get("polls_p95")), "median <= 2", med is not None and med <= 2)  # fmt: skip
    add("14 with webhooks: detection delay median / p95, s",
        _pair(w.get("delay_median_s"), w.get("delay_p95_s")))  # fmt: skip
    add("14 jobs measured / completed by callback", _pair(w.get("measured"), w.get("by_webhook")))


def _pollcost_rows(p: dict[str, Any], add: Add) -> None:
    b, c = p.get("base") or {}, p.get("current") or {}
    if not (b and c):
        if p.get("not_measured"):
            add("15 poll cost", p["not_measured"])
        return
    label = f"base {p.get('base_commit')} / current"
    bc, cc = b.get("cpu_ms_per_poll") or {}, c.get("cpu_ms_per_poll") or {}
    add(f"15 poller CPU ms per poll ({label})", _pair(bc.get("poller"), cc.get("poller")))
    add(f"15 all processes' CPU ms per poll ({label})",
        _pair(round(sum(bc.values()), 2), round(sum(cc.values()), 2)))  # fmt: skip
    add(f"15 polls/s one poller serves, {p.get('asked_polls_per_s')} asked ({label})",
        _pair(b.get("polls_per_s"), c.get("polls_per_s")))  # fmt: skip


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


def _new_lines_text(fig: dict[str, Any]) -> str:
    """Lines 11-15's descriptions, with the sizes the run used."""
    m, d = _get(fig, "memory") or {}, _get(fig, "dispatch") or {}
    e, w = _get(fig, "efficiency"), _get(fig, "webhooks") or {}
    e = e if isinstance(e, dict) else {}
    pc = _get(fig, "pollcost") or {}
    sizes = ", ".join(f"{n:,}" for n in m.get("sizes") or [1000, 10000, 100000])
    texts = [
        "11. **Memory**: the Procfile's workers, warmed by "
        f"{m.get('warm_jobs', 100)} real jobs, then with {sizes} jobs waiting for Akool. The "
        "jobs are seeded, not sent (sending 100,000 would take most of an hour): submitted "
        "records with their next poll parked and due after the run, written by the job scripts "
        "a real job runs (bench/parked.py: create, begin_submit, record_submitted, park with the "
        "message kombu would send), so a worker holds nothing for them by design; what this "
        "shows is that nothing else in a worker (the dispatcher, the heartbeat) grows with "
        "them. RSS is the median of 5 readings of both processes, main and children; the slope "
        "is least squares over the sizes. Redis per job is the growth of `used_memory` from "
        "none over the jobs (records, indexes, timelines, parked polls).",
        f"12. **Dispatcher**: {d.get('polls', 100_000):,} jobs seeded the same way with their "
        "polls already due, no worker running (nobody consumes the `poll` queue); one "
        "`Dispatcher.run_once` loop in the benchmark's process with the defaults "
        f"(`DISPATCH_BATCH` {d.get('batch', 1000)}) and the benchmark's rate limit "
        "(100,000/s, so the cap of rate x 2 s minus the queue does not bind), timed from the "
        "first batch to the one that found nothing due. Every poll is checked to be on the "
        "queue once. A batch is one Lua call: Redis runs nothing else meanwhile.",
        "13. **Efficiency before and after**: line 1's no-op ceiling and line 2's throughput, "
        f"{e.get('noop_tasks', '?')} no-op tasks and {e.get('jobs', '?')} jobs a run, one "
        f"worker `{e.get('worker', 'as above')}` on every queue, from a git worktree of "
        f"{e.get('base_commit', 'the commit before issue 14')} (`--efficiency-base`) and from "
        f"this tree, alternating, {e.get('rounds', '?')} runs each, a fresh Redis each run; "
        "means of each side's runs. Each side's ceiling runs with its own Celery settings.",
        f"14. **Webhooks**: the Procfile's workers with `PUBLIC_BASE_URL` pointing at "
        "`akool-audio web` (API_TOKENS set, the client id and secret that decrypt callbacks), "
        "line 4's jobs (about 13 s) at 2/s: a warm-up batch of "
        f"{w.get('warmup_jobs', '?')} jobs, waited for, teaches the estimator through the "
        f"callbacks; then {w.get('jobs', '?')} measured jobs. Polls are the record's count "
        "(polls that reached Akool).",
        f"15. **Poll cost**: {pc.get('jobs', 1000):,} jobs that the sandbox never finishes, "
        "each polled every 5 s (`POLL_INITIAL_DELAY` = `POLL_MAX_DELAY` = 5, so every wait is "
        "parked), through the Procfile's workers started from a git worktree of "
        f"{pc.get('base_commit', 'the base')} (issue 14 as first built) and from this tree, "
        f"alternating, {pc.get('rounds', '?')} runs each; after 15 s of warm-up, polls are "
        "counted at the sandbox and CPU seconds read from /proc (Redis: INFO cpu) over "
        f"{pc.get('window_s', '?')} s. More polls are asked than one poller serves, so polls/s "
        "is its capacity.",
    ]
    out = [textwrap.fill(t, width=96, subsequent_indent="    ") for t in texts]
    for name, i in (("memory", 0), ("dispatch", 1), ("efficiency", 2), ("webhooks", 3),
                    ("pollcost", 4)):  # fmt: skip
        extra = _separately(fig, name)
        if extra:
            out[i] = textwrap.fill(texts[i] + extra, width=96, subsequent_indent="    ")
    return "\n".join(out)


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
    timeline = _get(fig, "capacity", "parked", "timeline")
    columns = _get(fig, "capacity", "parked", "timeline_columns") or []
    return TEMPLATE.format(
        command=fig.get("command"),
        started=fig.get("started"),
        machine=fig.get("machine"),
        worker=fig.get("worker"),
        seconds=fig.get("seconds"),
        table="\n".join(md),
        timeline=json.dumps(timeline) if timeline else "(capacity not run)",
        columns=", ".join(columns),
        new_lines=_new_lines_text(fig),
        **{f"sep_{k}": _wrapped_separately(fig, k) for k in ("ceiling", "throughput", "capacity")},
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


def _wrapped_separately(fig: dict[str, Any], name: str) -> str:
    """The "measured on its own" note of an older line, on lines of its own."""
    text = _separately(fig, name)
    return "\n" + textwrap.fill(text.strip(), width=93, initial_indent="   ",
                                 subsequent_indent="   ") if text else ""  # fmt: skip


def _web_text(fig: dict[str, Any]) -> str:
    """Line 9's description, with the sizes the run used."""
    i, lst = _get(fig, "web", "intake") or {}, _get(fig, "web", "list") or {}
    server = str(i.get("server") or "")
    shown = f"`{server}`" if server else "the Procfile's `web` command"
    if server.startswith("gunicorn"):
        shown += " (gunicorn with worker/web/gunicorn_conf.py: one worker process)"
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

Capacity timeline, line 5 with the defaults (every ~1/16 of the run: {columns}):
{timeline}

## What each line measures

1. **Ceiling**: `bench.noop` tasks (a no-op, `celery -A bench.noop`) with the pipeline's own
   Celery settings (late acks, events, results, prefetch 1) and the same worker; all sent
   first.{sep_ceiling}
2. **Throughput**: `audio.create` jobs sent by a bare caller app, the sandbox finishing at
   create; jobs/s from the first send to the last completion event. Tasks per job are Redis
   `LPUSH` calls (one per published message) per job; Redis commands come from
   `INFO commandstats` (commands run inside our Lua scripts count too).{sep_throughput}
3. **Baseline**: the loop of Akool's demos as one task (`bench/naive.py`: create, `sleep(5)`,
   poll, download) against our pipeline; same worker, jobs of 10 s +/- 10 % at the sandbox.
   Ours runs 1,000 jobs; the naive one twice its concurrency (more would only take longer: it
   finishes `concurrency` jobs per ~10-15 s whatever the backlog).
4. **Polling**: jobs arrive at 2/s with 20-380 words; the sandbox takes `(8 s + 25 ms/word)`
   times lognormal(0, 0.25), about 13 s. Polls are our job record's count; detection delay is
   our `detected_at` (the poll that saw status 3) minus the sandbox's `completed_at`. "Learned"
   leaves out the jobs of the first 25 s, sent before any history existed (the cold start,
   shown apart).
5. **Capacity**: all jobs sent at once by a bare caller, the sandbox taking 120 s
   (lognormal, sigma 0.1), against the Procfile's worker processes (the layout line: an intake
   worker and a poller, each with its own queues and concurrency), `AKOOL_RATE_LIMIT` and
   `AKOOL_RATE_BURST` as shown (the sandbox has no limit; the default 5/s could not serve the
   load). The estimator's history is seeded (as a running system would have it), so the first
   poll lands near 112 s. Run twice: with the defaults (a wait longer than
   `POLL_PARK_THRESHOLD`, 4 s, is parked in Redis and dispatched when due) and with
   `POLL_PARK_THRESHOLD` 1e9, every wait a countdown held by a worker (the previous design, in
   the same layout). Poll lag is every poll's `t - planned` from the jobs' timelines (a poll
   that waited for a rate-limit token counts once, when it ran); detection delay is our
   `detected_at` minus the sandbox's `completed_at`, and its share is of that job's duration.
   Held is kombu's unacked hash (messages a worker has taken, countdowns included); RSS is each
   process's. Memory per job is the peak growth of worker RSS (both processes) and Redis
   `used_memory` over the peak number in flight.{sep_capacity}
6. **Download**: `worker.egress.download.download` in a fresh process; peak RSS growth is the
   change of `VmHWM`.
7. **Pools**: throughput with every Akool call made 0.2 s slow at the sandbox (as a real API
   is), per pool and concurrency, with the worker's total RSS.
{storage}
{web_line}
{timeline_line}
{new_lines}

## Reading the figures

{notes}
"""
