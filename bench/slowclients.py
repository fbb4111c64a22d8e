"""(16) The web service against slow and idle clients, for each server that was considered
(issue 23), in one run against one private Redis with ``JOBS`` job records:

- ``gthread``: gunicorn's threaded worker, one process of 4 threads (bench/gthread_conf.py, the
  Procfile's ``web`` before issue 23);
- ``gevent``: the Procfile's ``web`` command now (worker/web/serving.py);
- ``waitress``: waitress 4 threads, ``--connection-limit`` 1000, ``--channel-timeout`` 15,
  when it can be imported (it is not a dependency: ``pip install waitress`` to measure it).

For each: ``/healthz`` and ``GET /v1/jobs?limit=50`` are asked one after the other, each on a
new connection with a 5 s timeout, then again 0.25 s later, first for ``calm`` seconds with
nobody else connected (the baseline), then for ``hold`` seconds while ``slow_heads`` clients
send a request head one byte every 2 s, ``slow_bodies`` clients send a body to
``/akool/webhook`` (declared 60,000 bytes) one byte every 2 s, and ``idle`` sockets stay
connected without a byte (reopened when the server closes them, as an attacker would). The
figures: the share answered within 2 s, p50/p95/max, and p95 under attack over p95 at
baseline. Then the request rates of ``GET /v1/jobs?limit=50`` and ``POST /v1/jobs`` from
``threads`` client threads with keep-alive connections, nobody attacking (as bench/web.py
drives them), in ``rounds`` rounds alternating between the servers (all up at once), so the
machine's other load falls on each alike.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import select
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bench import web
from bench.jobs import VOICE
from bench.polling import pct
from bench.stack import Stack
from config.settings import Settings
from sandbox import DEFAULT_CLIENT_ID
from worker.devstack.localredis import free_port
from worker.devstack.procs import Proc

JOBS = 500
WITHIN = 2.0  # seconds: the target
PROBE_TIMEOUT = 5.0
DRIP = 2.0  # seconds between two bytes of a slow client
PATHS = ("/healthz", f"/v1/jobs?limit={web.LIMIT}")
HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
BODY_HEAD = (
    b"POST /akool/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 60000\r\n\r\n"
)


def servers(port: int) -> dict[str, tuple[list[str], str, dict[str, str]]]:
    """Each server's argv, the line it prints once listening, and extra environment."""
    bin_dir = Path(sys.executable).parent
    app = "worker.web.app:application"
    gunicorn = str(bin_dir / "gunicorn")
    out: dict[str, tuple[list[str], str, dict[str, str]]] = {
        "gthread": ([gunicorn, "-c", "python:bench.gthread_conf", app], "listening", {}),
        "gevent": (web.server_command(port)[0], "web service listening", {}),
    }
    spec = importlib.util.find_spec("waitress")
    if spec is not None and spec.origin:
        where = str(Path(spec.origin).parents[1])
        argv = [sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}", "--threads=4",
                "--connection-limit=1000", "--channel-timeout=15", app]  # fmt: skip
        out["waitress"] = (argv, "Serving on", {"EXTRA_PATH": where})
    return out


class Server(Proc):
    def __init__(self, name: str, env: Mapping[str, str], log: Path) -> None:
        self.port = free_port()
        argv, ready, extra = servers(self.port)[name]
        env = {k: v for k, v in env.items() if k not in ("WEB_CONCURRENCY", "API_TOKENS_FILE")}
        env.update(WEB_HOST="127.0.0.1", WEB_PORT=str(self.port), API_TOKENS=web.TOKEN)
        env["AKOOL_CLIENT_ID"] = DEFAULT_CLIENT_ID  # the webhook reads bodies
        if "EXTRA_PATH" in extra:
            env["PYTHONPATH"] = f"{env.get('PYTHONPATH', '')}{os.pathsep}{extra['EXTRA_PATH']}"
        super().__init__(argv, env, log, ready)


class Attack:
    """Slow heads, slow bodies and idle sockets, kept up by one thread until ``stop``."""

    def __init__(self, port: int, slow_heads: int, slow_bodies: int, idle: int) -> None:
        self.port = port
        self.want = {"head": slow_heads, "body": slow_bodies, "idle": idle}
        self.socks: dict[socket.socket, list[Any]] = {}  # sock -> [kind, bytes sent]
        self.reopened = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _open(self, kind: str) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError:
            return  # refused or timed out: tried again on the next round
        s.setblocking(False)
        if kind == "body":
            with contextlib.suppress(OSError):
                s.send(BODY_HEAD)
        self.socks[s] = [kind, 0]

    def _fill(self) -> None:
        for kind, n in self.want.items():
            have = sum(1 for k, _ in self.socks.values() if k == kind)
            for _ in range(n - have):
                self._open(kind)

    def _drop(self, s: socket.socket) -> None:
        self.socks.pop(s, None)
        s.close()
        self.reopened += 1

    def _run(self) -> None:
        next_drip = time.monotonic() + DRIP
        while not self.stopping.is_set():
            self._fill()
            readable, _, _ = select.select(list(self.socks), [], [], 0.2)
            for s in readable:  # the server answered or closed: this client starts again
                self._drop(s)
            if time.monotonic() >= next_drip:
                next_drip += DRIP
                for s, state in list(self.socks.items()):
                    kind, sent = state
                    if kind == "idle":
                        continue
                    byte = HEAD[sent : sent + 1] if kind == "head" else b"{"
                    try:
                        s.send(byte or b"a")
                        state[1] += 1
                    except OSError:
                        self._drop(s)
        for s in list(self.socks):
            s.close()

    def __enter__(self) -> Attack:
        self._fill()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def probe(port: int, path: str) -> tuple[bool, float]:
    """One GET on a new connection: (answered 200, seconds; the timeout when it was not)."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=PROBE_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {web.TOKEN}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200, time.perf_counter() - t
    except OSError:
        return False, max(time.perf_counter() - t, PROBE_TIMEOUT)
    finally:
        conn.close()


def probes(port: int, seconds: float) -> dict[str, list[tuple[bool, float]]]:
    """Every path once, then 0.25 s, again, for ``seconds`` (at least one round)."""
    out: dict[str, list[tuple[bool, float]]] = {p: [] for p in PATHS}
    end = time.monotonic() + seconds
    while True:
        for path in PATHS:
            out[path].append(probe(port, path))
        if time.monotonic() >= end:
            return out
        time.sleep(0.25)


def summary(got: list[tuple[bool, float]]) -> dict[str, Any]:
    lat = [s for _, s in got]
    within = sum(1 for ok, s in got if ok and s <= WITHIN)
    return {
        "n": len(got),
        "within_2s": round(within / len(got), 3) if got else None,
        "p50_ms": round(pct(lat, 0.5) * 1000, 1),
        "p95_ms": round(pct(lat, 0.95) * 1000, 1),
        "max_ms": round(max(lat) * 1000, 1) if lat else None,
    }


def rates(port: int, threads: int, per_thread: int) -> dict[str, Any]:
    """``GET /v1/jobs?limit=50`` and ``POST /v1/jobs`` per second (keep-alive connections)."""
    conns: list[web.Http] = []

    def sender(method: str, path: str) -> Callable[[int], web.Sender]:
        def make(k: int) -> web.Sender:
            conn = web.Http(port)
            conns.append(conn)

            def send() -> None:
                body = None
                if method == "POST":
                    body = {"kind": "create", "input_text": "A few words to speak.",
                            "voice_id": VOICE, "job_id": uuid.uuid4().hex}  # fmt: skip
                status, raw, _ = conn.call(method, path, body)
                if status not in (200, 202):
                    raise RuntimeError(f"{method} {path} answered {status}: {raw[:200]!r}")

            return send

        return make

    out = {}
    for name, method, path in (("list", "GET", PATHS[1]), ("post", "POST", "/v1/jobs")):
        got = web.drive(threads, per_thread, sender(method, path))
        out[name] = {
            "per_s": round(got["requests"] / got["seconds"], 1),
            "p50_ms": round(pct(got["latencies"], 0.5) * 1000, 2),
            "p95_ms": round(pct(got["latencies"], 0.95) * 1000, 2),
        }
        for c in conns:
            c.close()
        conns.clear()
    return out


def attacked(svc: Server, sizes: Mapping[str, float]) -> dict[str, Any]:
    """The probes' figures calm, then under attack (the module's docstring)."""
    calm = probes(svc.port, sizes["calm"])
    counts = (int(sizes["slow_heads"]), int(sizes["slow_bodies"]), int(sizes["idle"]))
    with Attack(svc.port, *counts) as atk:
        time.sleep(1.0)  # every attacker connected
        hit = probes(svc.port, sizes["hold"])
    out: dict[str, Any] = {"command": " ".join([Path(svc.args[0]).name, *svc.args[1:]]),
                           "attackers_reopened": atk.reopened}  # fmt: skip
    for path in PATHS:
        key = "healthz" if path == "/healthz" else "list"
        base, under = summary(calm[path]), summary(hit[path])
        ratio = round(under["p95_ms"] / base["p95_ms"], 1) if base["p95_ms"] else None
        out[key] = {"calm": base, "attacked": under, "p95_ratio": ratio}
    return out


def run(
    hold: float = 15.0,
    slow_heads: int = 20,
    slow_bodies: int = 20,
    idle: int = 300,
    calm: float = 5.0,
    threads: int = 8,
    per_thread: int = 200,
    rounds: int = 3,
) -> dict[str, Any]:
    """Every server up at once on its own port; each attacked in turn (with time to settle
    after), then the request rates in alternating rounds, so the machine's other load falls
    on all of them alike."""
    sizes: dict[str, float] = {
        "hold": hold, "slow_heads": slow_heads, "slow_bodies": slow_bodies, "idle": idle,
        "calm": calm, "threads": threads, "per_thread": per_thread, "rounds": rounds,
    }  # fmt: skip
    load = round(os.getloadavg()[0], 2)
    out: dict[str, Any] = {"sizes": sizes, "jobs": JOBS, "load_before": load}
    with Stack("slowclients") as st:
        settings = Settings.from_env(st.env())
        now = time.time()
        ids = web.job_ids(JOBS, seed=16)
        web.seed(st.r, settings, [(j, now - (JOBS - i), False) for i, j in enumerate(ids)])
        running: dict[str, Server] = {}
        try:
            for name in servers(free_port()):
                running[name] = Server(name, st.env(), st.tmp / f"{name}.log").start(60)
            for name, svc in running.items():
                print(f"   slowclients: {name} attacked ...", file=sys.stderr, flush=True)
                out[name] = attacked(svc, sizes)
                time.sleep(2.0)
            got: dict[str, list[dict[str, Any]]] = {name: [] for name in running}
            for _ in range(rounds):
                for name, svc in running.items():
                    got[name].append(rates(svc.port, threads, per_thread))
            for name, runs in got.items():
                out[name]["rates"] = {
                    key: {
                        "per_s": round(sum(r[key]["per_s"] for r in runs) / len(runs), 1),
                        "per_s_rounds": [r[key]["per_s"] for r in runs],
                        "p95_ms": round(max(r[key]["p95_ms"] for r in runs), 2),
                    }
                    for key in ("list", "post")
                }
        finally:
            for svc in running.values():
                svc.stop(30)
    if "waitress" not in out:
        out["waitress"] = "not measured: waitress is not installed (pip install waitress)"
    out["load_after"] = round(os.getloadavg()[0], 2)
    return out


def rows(s: dict[str, Any], add: Callable[..., None]) -> None:
    """Line 16 of the table (bench/report.py)."""
    if not s:
        return
    z = s.get("sizes") or {}
    attack = f"{z.get('slow_heads')} / {z.get('slow_bodies')} / {z.get('idle')}, {z.get('hold')}"
    add("16 attack: slow heads / slow bodies / idle sockets, held s", attack)
    for name in ("gthread", "gevent", "waitress"):
        m = s.get(name)
        if isinstance(m, str):
            add(f"16 {name}", m)
            continue
        if not isinstance(m, dict):
            continue
        label = f"{name}{' (shipped)' if name == 'gevent' else ''}"
        for key, path in (("healthz", "/healthz"), ("list", "GET /v1/jobs")):
            hit = (m.get(key) or {}).get("attacked") or {}
            share = hit.get("within_2s")
            add(f"16 {label}: {path} under attack: within 2 s; p95 / max ms; p95 x calm",
                f"{share}; {hit.get('p95_ms')} / {hit.get('max_ms')}; "
                f"{(m.get(key) or {}).get('p95_ratio')}", "all within 2 s",
                share is not None and share >= 1.0)  # fmt: skip
        r = m.get("rates") or {}
        per_s = [(r.get(k) or {}).get("per_s") for k in ("list", "post")]
        add(f"16 {label}: GET /v1/jobs?limit=50 / POST /v1/jobs per s (no attack)",
            _pair(*per_s))  # fmt: skip
    before, after = s.get("gthread") or {}, s.get("gevent") or {}
    if isinstance(before, dict) and isinstance(after, dict) and before and after:
        b, a = before.get("rates") or {}, after.get("rates") or {}
        add("16 rate ratio gevent / gthread: list; post",
            f"{_ratio(a, b, 'list')}; {_ratio(a, b, 'post')}")  # fmt: skip
    add("16 load average (1 min) before / after", f"{s.get('load_before')} / {s.get('load_after')}")


def _pair(a: Any, b: Any) -> str:
    return f"{a} / {b}"


def _ratio(a: dict[str, Any], b: dict[str, Any], key: str) -> float | None:
    x, y = (a.get(key) or {}).get("per_s"), (b.get(key) or {}).get("per_s")
    return round(x / y, 2) if x and y else None
