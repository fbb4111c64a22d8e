"""Redis Sentinel, with real processes on loopback (tests/support/redis.py: a master, a replica
and three Sentinels): every component finds the master through ``REDIS_URL=sentinel://...``,
with the first Sentinel of the list down; and a reduced failover under load (the master
SIGKILLed mid-run: tests/chaos/failover.py; full size in ``make chaos``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox import VOICES, SandboxServer
from tests.chaos import failover
from tests.support.harness import write_figures
from tests.support.procs import ROOT, CeleryWorker, worker_env
from tests.support.redis import SentinelSet, free_port
from tests.support.services import TEST_TOKEN, beat, web
from tests.support.stack import NotifyReceiver, caller_app
from tests.support.wait import until
from tests.support.webclient import WebClient

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


def test_every_component_finds_the_master_with_the_first_sentinel_down(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    cluster = SentinelSet(tmp_path / "redis", replicas=1).start()
    sb = make_sandbox(lifecycle={"mode": "polls", "polls": 1})
    try:
        cluster.sentinels[0].stop()  # the first one REDIS_URL names (celery#5538)
        env = worker_env(cluster.url, sb.url, tmp_path / "audio")
        port = free_port()
        w = CeleryWorker(env, tmp_path / "worker.log").start(timeout=60)
        b = beat(env, tmp_path / "beat.log").start()
        s = web(env, tmp_path / "web.log", port).start()
        caller = caller_app(cluster.url)
        caller.conf.broker_transport_options = {"master_name": cluster.name}
        caller.conf.result_backend_transport_options = {"master_name": cluster.name}
        try:
            with NotifyReceiver() as receiver:
                sent = [
                    caller.send_task(
                        "audio.create",
                        kwargs={"input_text": f"Behind Sentinels, {i}.", "voice_id": VOICE,
                                "job_id": f"sentinel-{i}", "notify_url": receiver.url},
                        queue="audio",
                    )
                    for i in range(3)
                ]  # fmt: skip
                assert [r.get(timeout=90)["state"] for r in sent] == ["succeeded"] * 3
                until(lambda: len(receiver.received) >= 3, 30, "three notifications")
            api = WebClient(port, TEST_TOKEN)
            assert api.call("GET", "/healthz", token=None).json["redis"] == "ok"
            assert api.call("GET", "/v1/jobs/sentinel-2").json["job"]["state"] == "succeeded"
            master = cluster.client()
            until(lambda: master.ttl("akool-audio:redbeat:lock") > 0, 20, "beat's lock")
            until(
                lambda: (
                    int(master.hget("akool-audio:metrics:total", "jobs_done:succeeded") or 0) >= 3
                ),
                30,
                "the counters",
            )
            # Everything went to the master: the replica holds the same, read-only.
            replica = cluster.client(
                next(p.port for p in cluster.data if p.port != cluster.master())
            )
            assert replica.hget("akool-audio:job:sentinel-1", "state") == "succeeded"
        finally:
            caller.close()
            s.stop()
            b.stop()
            w.stop()
    finally:
        cluster.stop()


@pytest.mark.timeout(420)
def test_a_master_killed_under_load_loses_no_job(tmp_path: Path) -> None:
    stack, cluster = failover.sentinel_stack(tmp_path, replicas=1)
    try:
        fig = failover.sentinel_failover(stack, cluster, 24, at=2.0, timeout=300)
    finally:
        stack.stop()
    out = tmp_path / "reduced.json"
    if os.environ.get("RELIABILITY_RECORD"):
        out = ROOT / "docs" / "reliability" / "reduced.json"
    write_figures(out, fig)
    print(fig.notes)
    f = fig.failover
    assert f["switch_seconds"] is not None, fig.events  # the Sentinels did fail over
    assert f["old_master_role"] == "slave", f  # and the old master came back as a replica
    assert fig.lost == 0, fig
    assert fig.worker_exits == 0, fig
    assert fig.succeeded == fig.jobs, fig
    assert fig.sha_mismatch == 0, fig
    assert fig.duplicates <= fig.ambiguous_submits, fig
