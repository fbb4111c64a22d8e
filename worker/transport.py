"""kombu's Redis transport, made to survive a message that is not a kombu envelope and a
channel closed after its connection was lost.

kombu pops a message with BRPOP and only then parses it; a body that is not JSON (or JSON of
the wrong shape) raises out of the worker's event loop, and Celery stops the whole worker with
"Unrecoverable error" (found by the poison test in tests/chaos). Any process that can LPUSH to
our queue could stop every worker that way. Here such a message is dropped and logged as an
error instead: it is already off the list, and nothing could ever run it.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis

logger = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    def _torn_down(self) -> bool:
        transport = self.channel.connection
        return transport is None or getattr(transport, "client", None) is None

    def ack(self, delivery_tag: Any) -> None:
        # A late ack of a message delivered on a channel whose connection was lost: kombu 5.7
        # raises AttributeError and Celery stops the worker. The message stays unacked and is
        # redelivered after the visibility timeout; our tasks are idempotent.
        if self._torn_down():
            logger.warning("ack after a lost connection skipped; redelivered later")
            return
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._torn_down():
            logger.warning("reject after a lost connection skipped; redelivered later")
            return
        super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]

    def restore_unacked(self, client: Any = None) -> None:
        if self._torn_down():
            return
        # Called when a channel closes. After a lost connection Celery closes the channel of a
        # connection that is already torn down, and kombu 5.7 raises AttributeError ("'NoneType'
        # object has no attribute 'hostname'") out of here: Celery then stops the worker with
        # "Unrecoverable error" (the Redis restart scenario in tests/chaos showed it). A message
        # not restored here stays in the unacked hash and comes back after the visibility
        # timeout, which is the normal path for a crashed worker's messages anyway.
        try:
            super().restore_unacked(client)  # type: ignore[no-untyped-call]
        except Exception as exc:
            logger.warning(
                "could not restore unacked messages on a lost connection (%s); they come back "
                "after the visibility timeout",
                type(exc).__name__,
            )


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _brpop_read(self, **options: Any) -> bool:
        delivered = self.qos._delivered  # tag -> message, kombu's record of unacked messages
        before = set(delivered)
        try:
            return bool(super()._brpop_read(**options))  # type: ignore[no-untyped-call]
        except (ValueError, KeyError, TypeError) as exc:
            # A body of the wrong shape fails after kombu recorded the message as unacked: ack
            # it, or it would come back after every visibility timeout, forever.
            for tag in set(delivered) - before:
                self.qos.ack(tag)
            # Not the body: a malformed message may hold anything, including secrets.
            logger.error(
                "dropped a message from Redis that is not a valid kombu message (%s: %s)",
                type(exc).__name__,
                str(exc)[:200],
            )
            return True


class Transport(kombu_redis.Transport):
    Channel = Channel
