"""Build a message exactly as kombu would send it, without sending it: the parked poll's
message is made by the worker that parks it and pushed later, in one Lua call, by a dispatcher
(worker/fleet/dispatcher.py).

A publish on kombu's Redis channel prepares the envelope, encodes the body, routes it through
the exchange to its queue and ends in ``Channel._put(queue, message)``, which LPUSHes
``dumps(message)`` onto the queue's list (or its priority sublist). Our channel
(worker/broker/reliable_redis.py) keeps that key and payload instead while this thread
captures, so the payload is kombu's own: envelope, body encoding, routing, delivery tag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.broker.reliable_redis import CAPTURE


class CaptureError(RuntimeError):
    """Raised when a publish did not reach exactly one queue of our transport."""


def capture_lpush(send: Callable[[], Any]) -> tuple[str, str]:
    """Run ``send()`` (e.g. ``sig.apply_async()``) and return the list key and payload its
    message would have been LPUSHed with; nothing reaches the queue."""
    puts: list[tuple[str, str]] = []
    CAPTURE.puts = puts
    try:
        send()
    finally:
        CAPTURE.puts = None
    if len(puts) != 1:
        raise CaptureError(
            f"expected the message on one queue, got {len(puts)} (is the broker transport "
            "worker.broker.reliable_redis:Transport?)"
        )
    return puts[0]
