"""Worker heartbeats, and the return of a dead worker's messages within seconds.

The reliable fetch records each message it takes in kombu's unacked hash (from which kombu
restores everything after ``VISIBILITY_TIMEOUT``, 15 minutes by default) and in a set of the
tags this consumer holds (``unacked:held:<consumer>``). Each worker process keeps a heartbeat
key (``unacked:hb:<consumer>``) with a TTL of ``HEARTBEAT_TIMEOUT``, refreshed every third of
it, and is listed in ``unacked:consumers``. When a heartbeat has expired, any live worker
claims that consumer's set in one Lua call (``worker/lua/claim_dead_consumer.lua``: two
restorers never claim one set) and puts each message back at the head of its queue with
kombu's own ``restore_by_tag`` (a WATCHed transaction: a message acked meanwhile is left
alone). A live worker, however slow its tasks, keeps its heartbeat and its messages.
"""

from __future__ import annotations

import logging
import math
from typing import Any, cast

from worker.broker.reliable_redis import consumer_id, held_key
from worker.lua import source

log = logging.getLogger(__name__)

_CLAIM = source("claim_dead_consumer")


class Heartbeat:
    """One consumer's heartbeat and the restorer of dead consumers' messages, on a kombu Redis
    channel of our transport (its client, key prefix and QoS)."""

    def __init__(self, channel: Any, timeout: float, consumer: str | None = None) -> None:
        self.channel = channel
        self.client = channel.client
        self.timeout = timeout
        self.me = consumer or consumer_id()
        self.unacked = channel.unacked_key
        self._claim = self.client.register_script(_CLAIM)

    def _key(self, name: str) -> str:
        return str(self.channel._key(name))

    def hb_key(self, consumer: str) -> str:
        return self._key(f"{self.unacked}:hb:{consumer}")

    @property
    def consumers_key(self) -> str:
        return self._key(f"{self.unacked}:consumers")

    def beat(self) -> None:
        """Refresh this consumer's heartbeat (first, then list it: a listed consumer without a
        heartbeat would look dead)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.hb_key(self.me), 1, ex=math.ceil(self.timeout))
            pipe.sadd(self.consumers_key, self.me)
            pipe.execute()

    def stop(self) -> None:
        """A clean shutdown: the heartbeat goes at once. What this consumer still held (a cold
        shutdown) is restored by the next live worker that looks."""
        self.client.delete(self.hb_key(self.me))

    def restore_dead(self) -> int:
        """Put back every message held by a consumer whose heartbeat has expired; returns how
        many were restored."""
        others = [
            c.decode() if isinstance(c, bytes) else str(c)
            for c in cast(set[Any], self.client.smembers(self.consumers_key))
        ]
        others = [c for c in others if c != self.me]
        if not others:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for consumer in others:
                pipe.exists(self.hb_key(consumer))
            alive = pipe.execute()
        restored = 0
        for consumer, beating in zip(others, alive, strict=True):
            if not beating:
                restored += self._restore(consumer)
        return restored

    def _restore(self, consumer: str) -> int:
        claim = self._key(f"{self.unacked}:restoring:{consumer}:{self.me}")
        keys = [
            self.hb_key(consumer),
            self._key(held_key(self.unacked, consumer)),
            self.consumers_key,
            claim,
        ]
        if not self._claim(keys=keys, args=[consumer]):
            return 0
        tags = [t.decode() if isinstance(t, bytes) else str(t) for t in self.client.smembers(claim)]
        for tag in tags:
            # Back at the head of its queue (it waited longest); a tag acked meanwhile is
            # no longer in the unacked hash and is skipped by kombu.
            self.channel.qos.restore_by_tag(tag, client=self.client, leftmost=True)
        self.client.delete(claim)
        if tags:
            log.warning(
                "restored %d message(s) of worker %s, whose heartbeat stopped", len(tags), consumer
            )
        return len(tags)
