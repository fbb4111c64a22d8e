"""Tests use the same private redis-server helper as `make demo`."""

from worker.devstack.localredis import RedisServer, free_port

__all__ = ["RedisServer", "free_port"]
