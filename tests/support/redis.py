"""Tests use the same private redis-server helper as `make demo`, and these for the locked-down
and highly available set-ups: a redis-server with TLS (``tls_server``), with ACL users
(``acl_server``), and a Sentinel deployment (``SentinelSet``: a master, replicas, Sentinels), all
on loopback, each a real process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from tests.support.tls import TestCA
from worker.devstack.localredis import RedisServer, free_port

__all__ = ["RedisProc", "RedisServer", "SentinelSet", "acl_server", "free_port", "tls_server"]

_BINARY = shutil.which("redis-server") or "redis-server"
BASE = ("--bind", "127.0.0.1", "--protected-mode", "no", "--maxmemory-policy", "noeviction",
        "--loglevel", "notice")  # fmt: skip


class RedisProc:
    """``redis-server ARGS`` logging to ``workdir/redis.log``; ready once ``probe()`` answers
    a PING. ``stop`` terminates it, ``kill`` sends SIGKILL (a crash: no shutdown save)."""

    def __init__(
        self, workdir: Path, args: Sequence[str], port: int, probe: Callable[[], redis.Redis]
    ) -> None:
        self.workdir = workdir
        self.args = [_BINARY, *args]
        self.port = port
        self.probe = probe
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "redis.log"

    def start(self, timeout: float = 10.0) -> RedisProc:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            client = self.probe()
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start: {self.log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.05)  # ok-sleep: waiting for a local redis-server to start
            finally:
                client.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def tls_server(workdir: Path, ca: TestCA, *, mutual: bool = True) -> tuple[RedisProc, str]:
    """A redis-server that speaks TLS only (its plain port off), with a certificate ``ca``
    signed for 127.0.0.1 and localhost; ``mutual``: clients must present a certificate ``ca``
    signed. Returns the server and its ``rediss://`` URL."""
    port = free_port()
    cert = ca.issue("redis-server")
    args = [*BASE, "--port", "0", "--tls-port", str(port), "--dir", str(workdir), "--save", "",
            "--tls-cert-file", str(cert.cert), "--tls-key-file", str(cert.key),
            "--tls-ca-cert-file", str(ca.pem),
            "--tls-auth-clients", "yes" if mutual else "no"]  # fmt: skip
    client_cert = ca.issue("probe-client", names=("probe",), ips=(), client=True)

    def probe() -> redis.Redis:
        return redis.Redis(
            port=port, ssl=True, ssl_ca_certs=str(ca.pem), ssl_certfile=str(client_cert.cert),
            ssl_keyfile=str(client_cert.key), socket_connect_timeout=0.5,
        )  # fmt: skip

    return RedisProc(workdir, args, port, probe), f"rediss://127.0.0.1:{port}/0"


def acl_server(workdir: Path, users: Sequence[str], admin_password: str) -> RedisProc:
    """A redis-server whose ``default`` user is off: only ``users`` (ACL rule lines, e.g.
    ``"app on >pw ~* +@all"``) and an ``admin`` with every right (``admin_password``) log in."""
    port = free_port()
    acl = workdir / "users.acl"
    workdir.mkdir(parents=True, exist_ok=True)
    lines = ["user default off", f"user admin on >{admin_password} ~* &* +@all"]
    acl.write_text("\n".join([*lines, *(f"user {u}" for u in users)]) + "\n")
    args = [*BASE, "--port", str(port), "--dir", str(workdir), "--save", "",
            "--aclfile", str(acl)]  # fmt: skip

    def probe() -> redis.Redis:
        return redis.Redis(
            port=port, username="admin", password=admin_password, socket_connect_timeout=0.5
        )

    return RedisProc(workdir, args, port, probe)


class SentinelSet:
    """One master, ``replicas`` replicas and ``sentinels`` Sentinels (quorum 2) on loopback,
    master name ``name``. The master and replicas write an AOF (``appendfsync everysec``), as
    production would. Sentinels declare a master down after ``down_after_ms``."""

    def __init__(
        self,
        workdir: Path,
        *,
        replicas: int = 2,
        sentinels: int = 3,
        name: str = "mymaster",
        down_after_ms: int = 1000,
        min_replicas_to_write: int = 0,
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.down_after_ms = down_after_ms
        self.data: list[RedisProc] = []
        self.sentinels: list[RedisProc] = []
        ports = [free_port() for _ in range(1 + replicas)]
        for i, port in enumerate(ports):
            args = [*BASE, "--port", str(port), "--dir", str(workdir / f"data{i}"),
                    "--save", "", "--appendonly", "yes", "--appendfsync", "everysec",
                    "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
                    "--min-replicas-to-write", str(min_replicas_to_write),
                    "--min-replicas-max-lag", "10"]  # fmt: skip
            if i:
                args += ["--replicaof", "127.0.0.1", str(ports[0])]
            self.data.append(RedisProc(workdir / f"data{i}", args, port, _plain(port)))
        self.master_port = ports[0]
        for i in range(sentinels):
            port = free_port()
            directory = workdir / f"sentinel{i}"
            directory.mkdir(parents=True, exist_ok=True)
            conf = directory / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {directory}\n"
                f"sentinel monitor {name} 127.0.0.1 {ports[0]} 2\n"
                f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                f"sentinel failover-timeout {name} 10000\n"
                f"sentinel parallel-syncs {name} 1\n"
            )
            self.sentinels.append(
                RedisProc(directory, [str(conf), "--sentinel"], port, _plain(port))
            )

    @property
    def url(self) -> str:
        """``sentinel://...;...`` for REDIS_URL, database 0."""
        return ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels) + "/0"

    def start(self) -> SentinelSet:
        for server in self.data:
            server.start()
        self.wait_replicated()
        for sentinel in self.sentinels:
            sentinel.start()
        self.wait_until(lambda: self.known_replicas() >= len(self.data) - 1, 20, "sentinels")
        return self

    def stop(self) -> None:
        for proc in [*self.sentinels, *self.data]:
            proc.stop()

    def by_port(self, port: int) -> RedisProc:
        return next(p for p in self.data if p.port == port)

    def master(self) -> int:
        """The port the Sentinels that answer name as the master's (the first that answers);
        the first server's before the Sentinels run."""
        if not any(s.proc is not None for s in self.sentinels):
            return self.master_port
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            client = _plain(sentinel.port)()
            try:
                answer: Any = client.sentinel_get_master_addr_by_name(self.name)
                return int(answer[1])
            except redis.ConnectionError:
                continue
            finally:
                client.close()
        raise RuntimeError("no Sentinel answers")

    def known_replicas(self) -> int:
        client = _plain(self.sentinels[0].port)()
        try:
            replicas = client.sentinel_slaves(self.name)
        finally:
            client.close()
        return sum(1 for r in replicas if not (r["is_sdown"] or r["is_odown"]))

    def client(self, port: int | None = None) -> redis.Redis:
        return redis.Redis(port=port or self.master(), decode_responses=True)

    def wait_replicated(self, timeout: float = 20) -> None:
        """Until every running replica has caught up with the master's offset."""
        master = self.client()

        def caught_up() -> bool:
            info = master.info("replication")
            offset = info["master_repl_offset"]
            alive = [p for p in self.data if p.alive() and p.port != self.master()]
            peers = [info.get(f"slave{i}", {}) for i in range(info["connected_slaves"])]
            return len(peers) >= len(alive) and all(p.get("offset") == offset for p in peers)

        self.wait_until(caught_up, timeout, "replicas to catch up")
        master.close()

    @staticmethod
    def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)  # ok-sleep: waiting for other processes


def _plain(port: int) -> Callable[[], redis.Redis]:
    def probe() -> redis.Redis:
        return redis.Redis(port=port, socket_connect_timeout=0.5, socket_timeout=2)

    return probe
