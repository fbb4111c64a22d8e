"""Shared fixtures: real redis-servers and real sandbox HTTP servers, all on loopback.

Redis: ``redis_server`` is the session's shared server; ``redis_url`` flushes it before each
test that asks for it. A module whose processes need a Redis nobody else wrote to takes
``private_redis`` (its own server for the module) and overrides ``redis_server`` with it, so
that ``caller`` and ``redis_url`` use it too; no module flushes the shared server.

Sandbox: ``make_sandbox`` (servers for one test) and ``make_module_sandbox`` (servers for one
module) are factories ``make(**configure_kwargs)`` that start a ``SandboxServer`` on a free
port, apply ``configure(...)`` and stop every server they made at teardown. ``sandbox`` is one
fresh, unconfigured server for one test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, settings

from tests.support.redis import RedisServer

# The suite runs in parallel on a small machine (make test: pytest -n 4): Hypothesis's timing
# checks (a slow example, slow input generation) then fail on the machine's load, not on the
# property. Every property and example count stays as each test sets it.
settings.register_profile("suite", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("suite")

if TYPE_CHECKING:
    from celery import Celery

    from sandbox import SandboxServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the module's own, empty at the start of the module."""
    server = RedisServer(tmp_path_factory.mktemp("redis-private")).start()
    yield server
    server.stop()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    """A clean database for each test."""
    client = redis_server.client()
    client.flushall()
    yield redis_server.url
    client.close()


@pytest.fixture()
def caller(redis_server: RedisServer) -> Iterator[Celery]:
    """A Celery app that imports none of our code: how other backends send jobs."""
    from tests.support.stack import caller_app

    app = caller_app(redis_server.url)
    yield app
    app.close()


@contextmanager
def _sandboxes() -> Iterator[Callable[..., SandboxServer]]:
    """``make(**configure_kwargs)``: a started sandbox on a free port, configured; every
    sandbox made is stopped when the context exits."""
    from sandbox import SandboxServer

    made: list[SandboxServer] = []

    def make(**configure: Any) -> SandboxServer:
        server = SandboxServer(port=0).start()
        made.append(server)
        if configure:
            server.configure(**configure)
        return server

    try:
        yield make
    finally:
        for server in reversed(made):
            server.stop()


@pytest.fixture()
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Sandboxes for one test, stopped after it."""
    with _sandboxes() as make:
        yield make


@pytest.fixture(scope="module")
def make_module_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Sandboxes for one module (for module-scoped stacks), stopped after its last test."""
    with _sandboxes() as make:
        yield make


@pytest.fixture()
def sandbox(make_sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return make_sandbox()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """A real S3 server on loopback (moto's, in a thread); tests reset it through its
    ``/moto-api/reset`` endpoint before use."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()  # port=0: the kernel picked a free one
    yield f"http://{host}:{port}"
    server.stop()
