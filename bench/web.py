"""(9) The web service (``worker.web``): how fast it takes jobs, and how its job list answers
with many records.

Intake: ``POST /v1/jobs`` per second against the real service (the Procfile's gunicorn command
with its own settings, worker/web/gunicorn_conf.py; ``akool-audio web`` when the Procfile has no
gunicorn ``web``), beside ``send_task("audio.create", ...)`` per second from a bare Celery app,
both from the same number of client threads (each with its own keep-alive connection), in the
same run, against the same private Redis. No worker consumes: this is intake only. The two are
measured in alternating rounds, and each thread's first call (which opens its connection) is
left out.

Listing: the list route's latency (``GET /v1/jobs?limit=50``: newest first, ``state=failed``, a
job id prefix ``q``, and pages 2-5 by cursor) and ``GET /v1/jobs/{id}``, from one client
thread, first with ``baseline`` job records in Redis, then with ``records``. Records are seeded
directly, by the job scripts ``JobStore.create`` and ``JobStore.fail`` run
(``worker/lua/job_create.lua``, ``job_fail.lua``, with the same keys and arguments) in pipelined
batches, so they carry the listing indexes and the timeline a real job's record does; one in
five is failed. Creation times are spread 30 ms apart, the newest ``baseline`` seeded first.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import shlex
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from bench.jobs import VOICE, send_create, text_of
from bench.polling import pct
from bench.stack import ROOT, Stack
from config.settings import Settings
from worker.devstack.localredis import free_port
from worker.devstack.procs import Proc
from worker.jobs import JobStore
from worker.jobs.record import request_fingerprint
from worker.jobs.request import parse_request
from worker.lua import job_script

TOKEN = "bench-api-token-0123456789abcdef"
LIMIT = 50
DEPTH = 5  # pages walked by cursor
FAIL_EVERY = 5  # one seeded record in five is failed
SPACING = 0.03  # seconds between the seeded records' creation times
BATCH = 1000  # seeded records per pipeline


def server_command(port: int) -> tuple[list[str], str]:
    """The Procfile's ``web`` command when it runs gunicorn, else ``akool-audio web``:
    (argv with this virtualenv's scripts, the command as shown)."""
    bin_dir = Path(sys.executable).parent
    try:
        lines = (ROOT / "Procfile").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        name, _, command = line.partition(":")
        argv = shlex.split(command)
        if name.strip() == "web" and argv[:1] == ["gunicorn"]:
            return [str(bin_dir / "gunicorn"), *argv[1:]], command.strip()
    args = ["web", "--host", "127.0.0.1", "--port", str(port)]
    return [str(bin_dir / "akool-audio"), *args], "akool-audio " + " ".join(args)


class WebService(Proc):
    """The web service on a free loopback port with the benchmark's API token."""

    def __init__(self, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        args, self.command = server_command(self.port)
        env = {k: v for k, v in env.items() if k not in ("WEB_CONCURRENCY", "API_TOKENS_FILE")}
        env.update(WEB_HOST="127.0.0.1", WEB_PORT=str(self.port), API_TOKENS=TOKEN)
        super().__init__(args, env, log, "web service listening")


class Http:
    """One keep-alive connection to the service; ``call`` opens a new one once if the server
    closed it (an idle keep-alive), so a POST carries its own ``job_id`` (a repeat is a 200)."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, float]:
        """(status, body, seconds from sending to the last byte read)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            t0 = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                if attempt == 2:
                    raise
                continue
            return resp.status, raw, time.perf_counter() - t0
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[Any, float]:
        status, raw, seconds = self.call("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {raw[:300]!r}")
        return json.loads(raw), seconds

    def close(self) -> None:
        self.conn.close()


Sender = Callable[[], None]


def drive(threads: int, per_thread: int, make: Callable[[int], Sender]) -> dict[str, Any]:
    """``threads`` threads call their sender ``per_thread`` times each, all starting together
    after one call of their own that is not counted (it opens their connection)."""
    barrier = threading.Barrier(threads + 1, timeout=120)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        try:
            send = make(k)
            send()
            barrier.wait()
            mine = []
            for _ in range(per_thread):
                t = time.perf_counter()
                send()
                mine.append(time.perf_counter() - t)
            with lock:
                latencies.extend(mine)
        except BaseException as exc:  # reported by the caller, after every thread ended
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(threads)]
    for t in pool:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):  # a thread failed: raised below
        barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return {"requests": threads * per_thread, "seconds": seconds, "latencies": latencies}


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(r["requests"] for r in runs)
    seconds = sum(r["seconds"] for r in runs)
    lat = [x for r in runs for x in r["latencies"]]
    return {
        "requests": n,
        "seconds": round(seconds, 2),
        "per_s": round(n / seconds, 1),
        "per_s_rounds": [round(r["requests"] / r["seconds"], 1) for r in runs],
        "p50_ms": round(pct(lat, 0.5) * 1000, 2),
        "p95_ms": round(pct(lat, 0.95) * 1000, 2),
    }


def intake(threads: int, per_thread: int, rounds: int) -> dict[str, Any]:
    """``POST /v1/jobs`` against ``send_task`` (see the module's docstring)."""
    text = text_of(12, random.Random(9))
    with Stack("web-intake") as st:
        env = st.env()
        svc = WebService(env, st.tmp / "web.log").start()
        http_conns: list[Http] = []

        def post(k: int) -> Sender:
            conn = Http(svc.port)
            http_conns.append(conn)

            def send() -> None:
                body = {"kind": "create", "input_text": text, "voice_id": VOICE,
                        "job_id": uuid.uuid4().hex}  # fmt: skip
                status, raw, _ = conn.call("POST", "/v1/jobs", body)
                if status not in (200, 202):
                    raise RuntimeError(f"POST /v1/jobs answered {status}: {raw[:300]!r}")

            return send

        def send_task(k: int) -> Sender:
            def send() -> None:
                send_create(st.caller, text)

            return send

        runs: dict[str, list[dict[str, Any]]] = {"send_task": [], "post": []}
        try:
            for _ in range(rounds):
                runs["send_task"].append(drive(threads, per_thread, send_task))
                runs["post"].append(drive(threads, per_thread, post))
                for c in http_conns:
                    c.close()
                http_conns.clear()
        finally:
            svc.stop()
        sent = rounds * threads * (per_thread + 1)
        records = JobStore(st.r, Settings.from_env(env)).counts()
        queued = int(st.r.llen("audio"))
    posted, tasks = _summary(runs["post"]), _summary(runs["send_task"])
    return {
        "server": svc.command,
        "threads": threads,
        "per_thread": per_thread,
        "rounds": rounds,
        "post": posted,
        "send_task": tasks,
        "ratio": round(posted["per_s"] / tasks["per_s"], 3),
        # Every request counted (and each thread's first): records made, messages waiting.
        "sent_each": sent,
        "records_accepted": records.get("accepted", 0),
        "queued": queued,
    }


def job_ids(n: int, seed: int = 12) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def seed(r: redis.Redis, settings: Settings, jobs: list[tuple[str, float, bool]]) -> None:
    """Record ``jobs`` (job id, creation time, failed) as ``JobStore.create`` (and
    ``JobStore.fail``) do, with their scripts, keys and arguments, ``BATCH`` to a pipeline."""
    store = JobStore(r, settings)  # for its key names only
    create = r.register_script(job_script("job_create"))
    fail = r.register_script(job_script("job_fail"))
    kwargs = {"input_text": text_of(12, random.Random(3)), "voice_id": VOICE}
    request = parse_request("create", kwargs, settings).to_record()
    doc, fingerprint = json.dumps(request, sort_keys=True), request_fingerprint("create", request)
    retention = max(1, int(settings.job_retention_days * 86400))
    for start in range(0, len(jobs), BATCH):
        pipe = r.pipeline(transaction=False)
        for job_id, t, failed in jobs[start : start + BATCH]:
            keys = [store.job_key(job_id), store.active_key, store.timeline.events_key(job_id),
                    store.listing.prefix]  # fmt: skip
            args: list[str | float] = [job_id, "create", doc, fingerprint, t,
                                       str(uuid.uuid4()), t + settings.poll_deadline]  # fmt: skip
            create(keys=keys, args=args, client=pipe)
            if failed:
                args = [job_id, t + 5, "bench_failed", "seeded as failed", retention]
                fail(keys=keys, args=args, client=pipe)
        pipe.execute()


def latencies(conn: Http, ids: list[str], prefix: str, samples: int) -> dict[str, Any]:
    """p50/p95 of each list query and of one job's detail; checks every page it reads."""
    rng = random.Random(7)
    base = f"/v1/jobs?limit={LIMIT}"
    queries = {
        "newest": base,
        "state": f"{base}&state=failed",
        "prefix": f"{base}&q={prefix}",
    }
    lat: dict[str, list[float]] = {k: [] for k in (*queries, "paging", "detail")}
    rows: dict[str, list[int]] = {k: [] for k in queries}
    walked: list[int] = []
    for _ in range(samples):
        for name, path in queries.items():
            doc, seconds = conn.get(path)
            lat[name].append(seconds)
            rows[name].append(len(doc["jobs"]))
            if name == "state" and any(j["state"] != "failed" for j in doc["jobs"]):
                raise RuntimeError("state=failed listed a job in another state")
            if name == "prefix" and any(not j["job_id"].startswith(prefix) for j in doc["jobs"]):
                raise RuntimeError(f"q={prefix} listed a job id without that prefix")
        doc, _ = conn.get(base)  # page 1 (timed above as "newest")
        seen = [j["job_id"] for j in doc["jobs"]]
        for _ in range(DEPTH - 1):
            if not doc["next_cursor"]:
                break
            doc, seconds = conn.get(f"{base}&cursor={doc['next_cursor']}")
            lat["paging"].append(seconds)
            seen += [j["job_id"] for j in doc["jobs"]]
        walked.append(len(set(seen)))
        doc, seconds = conn.get(f"/v1/jobs/{rng.choice(ids)}")
        lat["detail"].append(seconds)
    out: dict[str, Any] = {
        k: {
            "n": len(v),
            "p50_ms": round(pct(v, 0.5) * 1000, 2),
            "p95_ms": round(pct(v, 0.95) * 1000, 2),
        }
        for k, v in lat.items()
    }
    for k, v in rows.items():
        out[k]["rows_min"] = min(v)
    out["paging"]["distinct_min"] = min(walked)  # jobs seen over DEPTH pages, no repeats
    return out


def listing(records: int, baseline: int, samples: int) -> dict[str, Any]:
    """The list route at ``baseline`` records, then at ``records`` (module's docstring)."""
    ids = job_ids(records)
    t_end = time.time() - 60
    jobs = [(job_id, t_end - (records - i) * SPACING, i % FAIL_EVERY == 0)
            for i, job_id in enumerate(ids)]  # fmt: skip
    newest, older = jobs[records - baseline :], jobs[: records - baseline]
    # A prefix of one hex digit that starts many of the baseline's ids: a full page at both sizes.
    prefix = Counter(j[0][0] for j in newest).most_common(1)[0][0]
    out: dict[str, Any] = {"records": records, "baseline": baseline, "samples": samples,
                           "limit": LIMIT, "q": prefix, "failed_share": 1 / FAIL_EVERY}  # fmt: skip
    with Stack("web-list") as st:
        env = st.env()
        settings = Settings.from_env(env)
        store = JobStore(st.r, settings)
        svc = WebService(env, st.tmp / "web.log").start()
        conn = Http(svc.port)
        try:
            t = time.time()
            seed(st.r, settings, newest)
            out["seed_s_baseline"] = round(time.time() - t, 1)
            out["counts_baseline"] = store.counts()
            out["at_baseline"] = latencies(conn, [j[0] for j in newest], prefix, samples)
            t = time.time()
            seed(st.r, settings, older)
            out["seed_s"] = round(time.time() - t, 1)
            out["counts"] = store.counts()
            out["redis_mb"] = round(int(st.r.info("memory")["used_memory"]) / 2**20, 1)
            out["at_records"] = latencies(conn, ids, prefix, samples)
        finally:
            conn.close()
            svc.stop()
    if sum(out["counts"].values()) != records:
        raise RuntimeError(f"seeded {records} records, the indexes count {out['counts']}")
    out["p95_ratio"] = {
        k: round(v["p95_ms"] / out["at_baseline"][k]["p95_ms"], 2)
        for k, v in out["at_records"].items()
    }
    return out


def run(
    threads: int = 8,
    per_thread: int = 250,
    rounds: int = 2,
    records: int = 100_000,
    baseline: int = 1_000,
    samples: int = 150,
) -> dict[str, Any]:
    return {
        "intake": intake(threads, per_thread, rounds),
        "list": listing(records, baseline, samples),
    }
