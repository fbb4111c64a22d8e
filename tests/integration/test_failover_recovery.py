"""After a Sentinel failover the parts beside the consumer recover by themselves (issue 22),
with the default settings and no beat: the dispatcher moves a poll parked before the switch,
the worker's heartbeat is fresh on the new master, fleet counters written after the switch
reach it, and the web service (gunicorn, as the Procfile runs it) answers throughout: ``/healthz``
503 only while no master is known, then 200, and ``GET /v1/jobs`` after the switch."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from sandbox import SandboxServer
from tests.support.harness import DEFAULT_ENV, PREFIX, VOICE
from tests.support.procs import ROOT, CeleryWorker, Proc, worker_env
from tests.support.redis import SentinelSet, free_port
from tests.support.stack import caller_app
from tests.support.wait import until
from tests.support.webclient import WebClient

TOKEN = "failover-api-token-0123456789"
# Akool takes about 16 s: after the first polls (2 s, then backoff) the job's poll waits longer
# than POLL_PARK_THRESHOLD (4 s) and is parked in Redis, where the dispatcher finds it.
LIFECYCLE = {"mode": "duration", "base_seconds": 16.0, "per_word_seconds": 0.0, "jitter": 0.0}
# How long after the switch a client may still fail while it finds the new master: the web's
# Sentinel client asks again on its next connection error.
GRACE = 3.0


class Prober(threading.Thread):
    """``GET /healthz`` every 0.2 s: (time, status; 0 for no answer)."""

    def __init__(self, client: WebClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.seen: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            try:
                status = self.client.get("/healthz", token=None).status
            except OSError:
                status = 0
            self.seen.append((time.time(), status))


@pytest.mark.timeout(150)
def test_dispatcher_heartbeat_counters_and_web_recover_after_a_sentinel_failover(
    tmp_path: Path,
) -> None:
    # Given a master, a replica, three Sentinels; a worker and the web service on them; a job
    # whose poll is parked
    cluster = SentinelSet(tmp_path / "redis", replicas=1).start()
    sb = SandboxServer(port=0).start()
    port = free_port()
    env = worker_env(cluster.url, sb.url, tmp_path / "audio", DEFAULT_ENV)
    web_env = {**env, "API_TOKENS": TOKEN, "WEB_HOST": "127.0.0.1", "WEB_PORT": str(port)}
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("web:"))
    command = line.split(": ", 1)[1].split()
    gunicorn = str(Path(sys.executable).with_name(command[0]))
    web = Proc([gunicorn, *command[1:]], web_env, tmp_path / "web.log", "web service listening")
    worker = CeleryWorker(env, tmp_path / "worker.log")
    caller = caller_app(cluster.url)
    caller.conf.broker_transport_options = {"master_name": cluster.name}
    caller.conf.result_backend_transport_options = {"master_name": cluster.name}
    prober = Prober(WebClient(port, TOKEN))
    try:
        sb.configure(lifecycle=LIFECYCLE)
        worker.start(timeout=60)
        web.start()
        api = WebClient(port, TOKEN)
        request = {"input_text": "Parked across a failover.", "voice_id": VOICE,
                   "job_id": "parked-1"}  # fmt: skip
        caller.send_task("audio.create", queue="audio", kwargs=request)
        old = cluster.master()
        master = cluster.client(old)
        until(lambda: master.zscore(f"{PREFIX}:parked", "parked-1") is not None, 30, "parking")
        hb_before = sorted(master.scan_iter(match="*unacked:hb:*"))
        assert hb_before, "no heartbeat before the failover"
        cluster.wait_replicated()
        prober.start()
        time.sleep(1)
        # When the master is SIGKILLed and the Sentinels promote the replica
        killed = time.time()
        cluster.by_port(old).kill()
        until(lambda: cluster.master() != old, 30, "the Sentinels' switch")
        switched = time.time()
        new = cluster.client()
        # Then the parked poll is dispatched on the new master and the job succeeds
        until(lambda: new.hget(f"{PREFIX}:job:parked-1", "state") == "succeeded", 60,
              "the parked job to succeed on the new master")  # fmt: skip
        # and the counters it wrote after the switch reached the new master
        until(lambda: int(new.hget(f"{PREFIX}:metrics:total", "jobs_done:succeeded") or 0) >= 1,
              15, "the counters on the new master")  # fmt: skip
        # and the API lists it
        listed = api.get("/v1/jobs")
        assert listed.status == 200, listed.raw
        assert "parked-1" in listed.raw.decode(), listed.raw[:500]
        # and the worker's heartbeat, whose TTL is HEARTBEAT_TIMEOUT (20 s), was written anew
        # on the new master after the kill
        time.sleep(max(0.0, killed + 21 - time.time()))
        assert sorted(new.scan_iter(match="*unacked:hb:*")) == hb_before
        prober.stopping.set()
        prober.join(5)
    finally:
        prober.stopping.set()
        caller.close()
        web.stop()
        worker.stop()
        sb.stop()
        cluster.stop()
    # And /healthz answered 503 only until the switch (plus the grace to find the new
    # master), 200 before and after
    seen = prober.seen
    assert seen and seen[-1][1] == 200, seen[-10:]
    assert {s for _, s in seen} <= {200, 503}, seen
    late = [(round(t - switched, 1), s) for t, s in seen if s != 200 and t > switched + GRACE]
    assert not late, late
    early = [(round(t - killed, 1), s) for t, s in seen if s != 200 and t < killed]
    assert not early, early
    assert any(t > switched + GRACE for t, _ in seen), "no probe after the switch"
