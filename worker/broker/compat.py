"""Every use of a private Celery or kombu name, and of the shape of kombu's message envelope, in
one place. Reliability rests on them (worker/broker/reliable_redis.py, the parked polls, the
end of a chain), and none is a documented extension point: tests/unit/test_broker_compat.py
pins each name listed in :data:`PRIVATE` and the envelope Celery sends with our settings, so a
Celery or kombu upgrade fails a test first, not production.

- The envelope: what kombu's Redis transport LPUSHes, ``{"body", "content-encoding",
  "content-type", "headers", "properties": {"delivery_tag", "delivery_info": {"exchange",
  "routing_key"}, "priority", "body_encoding", ...}}``. worker/lua/reliable_fetch.lua reads
  ``properties``; worker/lua/dispatch_due.lua rewrites ``headers.sent_at`` and
  ``properties.delivery_tag`` through Redis's cjson (:func:`check_cjson_safe`).
- Capture: a publish kept, not sent (:func:`capture_lpush`), to build a parked poll's message.
- The Redis channel's private hooks, overridden through public names here
  (:class:`KombuChannel`, :class:`KombuQoS`).
- Celery's request: ending a chain (:func:`end_chain`), the event reprs (:func:`set_reprs`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from time import monotonic
from typing import Any

from celery.worker import state as worker_state
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

#: Private names we use, by owner; each one is referenced in this module only.
PRIVATE: dict[str, tuple[str, ...]] = {
    "kombu.transport.redis:Channel": (
        "_put",
        "_brpop_start",
        "_brpop_read",
        "_q_for_pri",
        "_get_message_priority",
        "_create_client",
        "_flush_brpop_reauth",
        "_queue_cycle",
        "_in_poll",
        "_brpop_sent_at",
    ),
    "kombu.transport.redis:QoS": ("_remove_from_indices", "_delivered"),
    "kombu.transport.virtual:Transport": ("_deliver",),
    "kombu.transport.redis:SentinelChannel": (
        "_sentinel_managed_pool",
        "_connparams",
        "_sentinel_manager",
        "_async_sentinel_manager",
    ),
    "celery.worker.request:Request": ("_argsrepr", "_kwargsrepr"),
}

# -- the envelope ------------------------------------------------------------------------------

HEADERS, PROPERTIES, BODY = "headers", "properties", "body"
DELIVERY_TAG, DELIVERY_INFO = "delivery_tag", "delivery_info"
#: The fields worker/lua/dispatch_due.lua writes on each dispatch of a kept message.
REWRITTEN = ((HEADERS, "sent_at"), (PROPERTIES, DELIVERY_TAG))
#: Significant digits Redis's cjson writes a number with.
CJSON_DIGITS = 14


class EnvelopeError(ValueError):
    """Raised when a message to be edited in Lua would not survive Redis's cjson unchanged."""


def check_cjson_safe(payload: str) -> None:
    """Raise EnvelopeError unless ``payload`` (a kombu envelope) decodes and encodes again
    through Redis's cjson to the same message, apart from the fields dispatch_due.lua rewrites.
    cjson writes an empty table as ``{}`` (an empty list would become an object; Redis 7.0 has
    no ``decode_array_with_array_mt``) and a number with 14 significant digits; it also
    escapes ``/``, which JSON reads back the same, and leaves the base64 body as it is."""
    envelope = json.loads(payload)
    if not isinstance(envelope, dict):
        raise EnvelopeError("the message is not a JSON object")
    rest = {k: v for k, v in envelope.items() if k != BODY}
    for part, field in REWRITTEN:
        if isinstance(rest.get(part), dict):
            rest[part] = {k: v for k, v in rest[part].items() if k != field}
    _walk(rest, "$")


def _walk(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        if not value:
            raise EnvelopeError(f"{path} is an empty list (cjson would write {{}})")
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
    elif (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and float(f"{value:.{CJSON_DIGITS}g}") != value
    ):
        raise EnvelopeError(f"{path} = {value!r} has more than {CJSON_DIGITS} digits")


def delivery_tag(payload: str) -> str | None:
    """The delivery tag of an envelope as LPUSHed (None: not a kombu envelope)."""
    try:
        props = json.loads(payload).get(PROPERTIES)
        tag = props.get(DELIVERY_TAG) if isinstance(props, dict) else None
    except (ValueError, AttributeError):
        return None
    return tag if isinstance(tag, str) else None


# -- kombu's Redis layout -------------------------------------------------------------------

#: The priority steps of a queue: step 0 is the queue's own list, step N ``<queue><sep>N``.
PRIORITY_STEPS = tuple(kombu_redis.PRIORITY_STEPS)
#: kombu's hash of the messages workers hold unacked: tag -> ``[envelope, exchange, key]``.
UNACKED_KEY = kombu_redis.Channel.unacked_key


def queue_keys(queue: str) -> list[str]:
    """The Redis lists of one kombu queue, priority 0 first."""
    sep = kombu_redis.Channel.sep
    return [queue if pri == 0 else f"{queue}{sep}{pri}" for pri in PRIORITY_STEPS]


def headers_of(raw: str | None) -> dict[str, Any]:
    """The headers of a kombu message as stored in Redis ({} when it has none or is not JSON)."""
    try:
        message = json.loads(raw) if raw else None
    except ValueError:
        return {}
    headers = message.get(HEADERS) if isinstance(message, dict) else None
    return headers if isinstance(headers, dict) else {}


def unacked_eta(raw: str) -> float | None:
    """When an unacked record's message is due (its ``eta`` header), if it has one."""
    try:
        record = json.loads(raw)
        eta = record[0][HEADERS].get("eta")
        return datetime.fromisoformat(eta).timestamp() if isinstance(eta, str) else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


# -- capture -----------------------------------------------------------------------------------

#: Set by :func:`capture_lpush` in the thread whose publishes it captures.
CAPTURE = threading.local()


class CaptureError(RuntimeError):
    """Raised when a publish did not reach exactly one queue of our transport."""


def capture_lpush(send: Callable[[], Any]) -> tuple[str, str]:
    """Run ``send()`` (e.g. ``sig.apply_async()``) and return the list key and payload its
    message would have been LPUSHed with; nothing reaches the queue.

    A publish on kombu's Redis channel prepares the envelope, encodes the body, routes it and
    ends in ``Channel._put(queue, message)``, which LPUSHes ``dumps(message)`` onto the queue's
    list (or its priority sublist). :meth:`KombuChannel.put` keeps that key and payload instead
    while this thread captures, so the payload is kombu's own."""
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


# -- the Redis channel's private hooks ---------------------------------------------------------


class KombuQoS(kombu_redis.QoS):
    """kombu's QoS with its private hooks under public names."""

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        return self.remove_from_indices(delivery_tag, pipe)

    def remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        """Queue the removal of ``delivery_tag`` from the unacked hash and index on ``pipe``."""
        return super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[no-untyped-call]

    def append_in_memory(self, message: Any, delivery_tag: Any) -> None:
        """Record a delivered message in this process only (kombu's Redis QoS would also write
        it to the unacked hash)."""
        virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]

    def ack_in_memory(self, delivery_tag: Any) -> None:
        """Forget an acknowledged message in this process only (kombu's Redis QoS would also
        remove it from the unacked hash)."""
        virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]

    @property
    def delivered(self) -> dict[Any, Any]:
        """Tag -> message: kombu's record of the messages this process holds unacked."""
        return self._delivered


class KombuChannel(kombu_redis.Channel):
    """kombu's Redis channel with the private hooks our transport overrides under public names:
    ``put`` (``_put``), ``fetch_start`` (``_brpop_start``), ``fetch_read`` (``_brpop_read``)."""

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        self.put(queue, message, **kwargs)

    def put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """LPUSH ``message`` onto ``queue`` (kombu's); kept instead while a thread captures."""
        captured = getattr(CAPTURE, "puts", None)
        if captured is not None:
            pri = self._get_message_priority(message, reverse=False)  # type: ignore[no-untyped-call]
            captured.append((self.priority_queue(queue, pri), dumps(message)))  # type: ignore[no-untyped-call]
            return
        super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]

    def _brpop_start(self, timeout: Any = None) -> None:
        self.fetch_start(timeout)

    def fetch_start(self, timeout: Any = None) -> None:
        """Send the command that fetches the next message (kombu's: BRPOP)."""
        super()._brpop_start(timeout)  # type: ignore[no-untyped-call]

    def _brpop_read(self, **options: Any) -> bool:
        return self.fetch_read(**options)

    def fetch_read(self, **options: Any) -> bool:
        """Read the reply of :meth:`fetch_start` and deliver its message (kombu's)."""
        return bool(super()._brpop_read(**options))  # type: ignore[no-untyped-call]

    def next_queues(self) -> list[str]:
        """The queues to try, in kombu's rotation (empty: none consumed)."""
        return list(self._queue_cycle.consume(len(self.active_queues)))

    def rotate_queue(self, queue: str) -> None:
        """Move ``queue`` to the back of the rotation (it just gave a message)."""
        self._queue_cycle.rotate(queue)

    def priority_queue(self, queue: str, pri: int) -> str:
        """The list that holds ``queue``'s messages of priority step ``pri``."""
        return str(self._q_for_pri(queue, pri))  # type: ignore[no-untyped-call]

    def new_client(self) -> Any:
        """A client on the channel's pool."""
        return self._create_client()  # type: ignore[no-untyped-call]

    def poll_sent(self, connection: Any) -> None:
        """Tell kombu's event loop a fetch is in flight on ``connection``."""
        self._in_poll = connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]

    def poll_done(self) -> None:
        """Tell kombu's event loop the fetch in flight was read."""
        self._in_poll = None  # type: ignore[assignment]
        self._flush_brpop_reauth()  # type: ignore[no-untyped-call]

    def deliver(self, payload: Any, queue: str) -> None:
        """Hand a decoded message of ``queue`` to the consumer (kombu's transport)."""
        self.connection._deliver(payload, queue)


class KombuSentinelChannel(kombu_redis.SentinelChannel):
    """kombu's Sentinel channel with its private hooks under public names: ``master_pool``
    (``_sentinel_managed_pool``) builds the pool of the master the Sentinels name."""

    def _sentinel_managed_pool(self, asynchronous: bool = False) -> Any:
        return self.master_pool(asynchronous)

    def master_pool(self, asynchronous: bool = False) -> Any:
        """The connection pool of the current master (kombu's: from the broker URL's list)."""
        return super()._sentinel_managed_pool(asynchronous)  # type: ignore[no-untyped-call]

    def connection_params(self, asynchronous: bool = False) -> dict[str, Any]:
        """The options of a connection of this channel (host, port, credentials, TLS...)."""
        return dict(self._connparams(asynchronous))  # type: ignore[no-untyped-call]

    def keep_sentinel_manager(self, manager: Any, asynchronous: bool) -> None:
        """Hand kombu the Sentinel manager, whose connections it closes with the channel."""
        if asynchronous:
            self._async_sentinel_manager = manager
        else:
            self._sentinel_manager = manager


# -- Celery's request --------------------------------------------------------------------------


def running_tags() -> set[str]:
    """The delivery tags of the requests this worker process still runs or will run: Celery's
    ``celery.worker.state`` sets of active and reserved requests (after a lost connection
    Celery drops the reserved and scheduled ones that had not started, and keeps the rest)."""
    tags: set[str] = set()
    requests = (*tuple(worker_state.active_requests), *tuple(worker_state.reserved_requests))
    for request in requests:
        tag = getattr(getattr(request, "message", None), "delivery_tag", None)
        if isinstance(tag, str):
            tags.add(tag)
    return tags


def end_chain(request: Any) -> None:
    """The task's chain ends here and no result is stored for it: celery/app/trace.py reads
    ``chain``, ``callbacks`` and ``ignore_result`` of the request after the task returns."""
    request.chain = None
    request.callbacks = None
    request.ignore_result = True


def set_reprs(request: Any, args_repr: str, kwargs_repr: str) -> None:
    """What the worker's task events show as the request's ``args`` and ``kwargs``."""
    request._argsrepr = args_repr
    request._kwargsrepr = kwargs_repr
