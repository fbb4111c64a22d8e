"""Shared fixtures: a real redis-server and a real sandbox HTTP server, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
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
def sandbox(tmp_path: Path) -> Iterator["SandboxServer"]:
    from sandbox import SandboxServer

    with SandboxServer(port=0) as server:
        yield server


if False:  # pragma: no cover - typing only
    from sandbox import SandboxServer
