"""Shared fixtures: a real redis-server and a real sandbox HTTP server, both on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.redis import RedisServer

if TYPE_CHECKING:
    from celery import Celery

    from sandbox import SandboxServer


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
def caller(redis_server: RedisServer) -> Iterator[Celery]:
    """A Celery app that imports none of our code: how other backends send jobs."""
    from tests.support.stack import caller_app

    app = caller_app(redis_server.url)
    yield app
    app.close()


@pytest.fixture()
def sandbox() -> Iterator[SandboxServer]:
    from sandbox import SandboxServer

    with SandboxServer(port=0) as server:
        yield server
