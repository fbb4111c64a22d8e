"""Redis over TLS everywhere: Debian's redis-server with ``--tls-port`` only (its plain port off)
and client certificates required, a CA the test makes. A worker, beat and the web service
started with ``rediss://`` and REDIS_TLS_CA_FILE / REDIS_TLS_CERT_FILE / REDIS_TLS_KEY_FILE
complete jobs: the broker, the result backend, RedBeat, the job store and the fleet counters
all talk TLS, since nothing else listens. A wrong CA stops a worker at start with the reason."""

from __future__ import annotations

import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from sandbox import VOICES, SandboxServer
from tests.support.procs import CELERY, ROOT, CeleryWorker, worker_env
from tests.support.redis import RedisProc, free_port, tls_server
from tests.support.services import TEST_TOKEN, beat, web
from tests.support.stack import NotifyReceiver, caller_app
from tests.support.tls import Issued, TestCA
from tests.support.wait import until
from tests.support.webclient import WebClient

VOICE = next(v["voice_id"] for v in VOICES if v["from"] == 3)


@dataclass
class Tls:
    ca: TestCA
    server: RedisProc
    url: str
    client: Issued

    def options(self) -> dict[str, Any]:
        return {
            "ssl_cert_reqs": ssl.CERT_REQUIRED,
            "ssl_ca_certs": str(self.ca.pem),
            "ssl_certfile": str(self.client.cert),
            "ssl_keyfile": str(self.client.key),
        }

    def env(self) -> dict[str, str]:
        return {
            "REDIS_TLS_CA_FILE": str(self.ca.pem),
            "REDIS_TLS_CERT_FILE": str(self.client.cert),
            "REDIS_TLS_KEY_FILE": str(self.client.key),
        }

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, **self.options())


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    workdir = tmp_path_factory.mktemp("tls")
    ca = TestCA(workdir / "ca")
    server, url = tls_server(workdir / "redis", ca, mutual=True)
    server.start()
    try:
        yield Tls(ca, server, url, ca.issue("worker-client", names=("akool-audio",), ips=(),
                                              client=True))  # fmt: skip
    finally:
        server.stop()


def tls_caller(t: Tls) -> Celery:
    """Another backend's bare Celery app, over TLS with its own client certificate."""
    app = caller_app(t.url)
    app.conf.broker_use_ssl = t.options()
    app.conf.redis_backend_use_ssl = t.options()
    return app


def test_the_server_takes_tls_with_a_client_certificate_only(tls: Tls) -> None:
    assert tls.admin().ping()
    plain = redis.Redis(port=tls.server.port, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        plain.ping()  # no plain-text Redis here: nothing of ours could have used one
    no_cert = redis.Redis.from_url(tls.url, ssl_ca_certs=str(tls.ca.pem), socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        no_cert.ping()


def test_a_worker_beat_and_the_web_service_complete_jobs_over_tls(
    tls: Tls, make_module_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sb = make_module_sandbox(lifecycle={"mode": "polls", "polls": 1})
    env = worker_env(tls.url, sb.url, tmp_path / "audio", tls.env())
    port = free_port()
    w = CeleryWorker(env, tmp_path / "worker.log").start(timeout=60)
    b = beat(env, tmp_path / "beat.log").start()
    s = web(env, tmp_path / "web.log", port).start()
    caller = tls_caller(tls)
    admin = tls.admin()
    try:
        with NotifyReceiver() as receiver:
            results = [
                caller.send_task(
                    "audio.create",
                    kwargs={"input_text": f"Over TLS, number {i}.", "voice_id": VOICE,
                            "job_id": f"tls-{i}", "notify_url": receiver.url},
                    queue="audio",
                )
                for i in range(3)
            ]  # fmt: skip
            summaries = [r.get(timeout=90) for r in results]  # the result backend, over TLS
            until(lambda: len(receiver.received) >= 3, 30, "three notifications")
        assert [x["state"] for x in summaries] == ["succeeded"] * 3, summaries
        # The web service reads the job store over TLS.
        client = WebClient(port, TEST_TOKEN)
        assert client.call("GET", "/healthz", token=None).json == {"status": "ok", "redis": "ok"}
        record = client.call("GET", "/v1/jobs/tls-1")
        assert record.status == 200 and record.json["job"]["state"] == "succeeded"
        # RedBeat holds its lock and keeps its schedule in the same Redis, over TLS.
        assert admin.ttl("akool-audio:redbeat:lock") > 0
        assert admin.zcard("akool-audio:redbeat:schedule") > 0
        # The fleet counters are flushed there too.
        until(
            lambda: int(admin.hget("akool-audio:metrics:total", "jobs_done:succeeded") or 0) >= 3,
            30,
            "the workers' counters",
        )
    finally:
        caller.close()
        s.stop()
        b.stop()
        w.stop()
    for proc in (w, b, s):
        assert "CERTIFICATE_VERIFY_FAILED" not in proc.text()


def test_a_wrong_ca_stops_a_worker_at_start_with_the_reason(
    tls: Tls, tmp_path: Path, sandbox: SandboxServer
) -> None:
    other = TestCA(tmp_path / "other-ca", name="another CA")
    env = {**worker_env(tls.url, sandbox.url, tmp_path / "audio", tls.env()),
           "REDIS_TLS_CA_FILE": str(other.pem)}  # fmt: skip
    args = [CELERY, "-A", "worker", "worker", "-P", "solo", "--without-mingle", "--without-gossip"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "configuration error: Redis's TLS certificate" in out.stderr
    assert f"does not verify with {other.pem}" in out.stderr
    assert "REDIS_TLS_CA_FILE" in out.stderr
    # And beat, the same.
    args = [CELERY, "-A", "worker", "beat", "-S", "redbeat.RedBeatScheduler"]
    out = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "does not verify with" in out.stderr, out.stderr[-2000:]
