"""kombu's Redis transport, made to survive a message that is not a kombu envelope.

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


class Channel(kombu_redis.Channel):
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
