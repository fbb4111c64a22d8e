"""The reliable-fetch transport (worker/broker/reliable_redis.py) behind Redis Sentinel.

It is kombu's Sentinel channel with our channel's fetch, poison handling and torn-down
guards: each new connection asks the Sentinels where the master is (redis-py's
SentinelConnectionPool), and a connection to a master that has become a replica is dropped and
made again. What differs from kombu's Sentinel transport:

- The Sentinels come from the transport option ``sentinels`` (config/celeryconfig.py), not
  from the broker URL's ``;`` list: on a connection error kombu moves to the next URL of that
  list and takes its scheme as the transport, which would replace this transport with kombu's
  own. redis-py asks each Sentinel in turn, so one that is down is skipped (celery#5538).
- Nothing else is needed for the Lua fetch script: a promoted replica has no scripts loaded,
  the first ``EVALSHA`` there answers NOSCRIPT and the channel sends the script with ``EVAL``
  again (reliable_redis.Channel._on_error); a new connection starts with ``EVAL`` anyway.
"""

from __future__ import annotations

from typing import Any

import redis
from redis import sentinel

from worker.broker import reliable_redis
from worker.broker.compat import KombuSentinelChannel


class Channel(reliable_redis.Channel, KombuSentinelChannel):
    #: ``[[host, port], ...]``: every Sentinel, asked in this order.
    sentinels: list[list[Any]] | None = None

    from_transport_options = (  # type: ignore[assignment]
        *reliable_redis.Channel.from_transport_options,
        "master_name",
        "min_other_sentinels",
        "sentinel_kwargs",
        "sentinel_fanout_compat",
        "sentinels",
    )

    def master_pool(self, asynchronous: bool = False) -> Any:
        if not self.sentinels:
            return super().master_pool(asynchronous)
        params = self.connection_params(asynchronous)
        params.pop("host", None)
        params.pop("port", None)
        manager = sentinel.Sentinel(
            [(str(host), int(port)) for host, port in self.sentinels],
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            sentinel_kwargs=getattr(self, "sentinel_kwargs", None),
            **params,
        )
        self.keep_sentinel_manager(manager, asynchronous)
        master_name = getattr(self, "master_name", None)
        if master_name is None:
            raise ValueError("'master_name' transport option must be specified.")
        credentials = {k: params[k] for k in ("username", "password") if params.get(k)}
        client = manager.master_for(master_name, redis.Redis, **credentials)
        return client.connection_pool


class Transport(reliable_redis.Transport):
    Channel = Channel
    default_port = 26379  # type: ignore[assignment]
