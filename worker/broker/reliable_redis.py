"""kombu's Redis transport with a fetch that cannot lose a message, and that survives messages
that are not kombu envelopes and channels closed after their connection was lost.

Reliable fetch. kombu pops a message with BRPOP and only afterwards, in the worker, records it
in the ``unacked`` hash from which a dead worker's messages are restored. A worker killed in
between (the reply in flight, in a socket buffer, or read but not yet recorded) loses the
message with no trace (docs/RELIABILITY.md, "The fetch window"). Redis cannot block
on several lists and move the element atomically (BRPOPLPUSH and BLMOVE take one source), so
this channel splits the two jobs of BRPOP:

- fetch: one Lua script pops the first message of the channel's queues *and* records it in
  kombu's ``unacked`` hash and index, in kombu's format, so kombu's own ack, reject and
  visibility-timeout restore work on it unchanged. A worker killed after the script ran leaves
  the message in ``unacked``; it comes back after the visibility timeout like any message of a
  dead worker.
- wait: when every queue was empty, ``BLMOVE q q RIGHT RIGHT`` on the channel's first queue
  (a rotation of a list onto itself: it moves nothing) blocks until that queue has a message
  or a short timeout passes, then the channel fetches again. A message on the first queue is
  fetched at once; one on another queue waits at most that timeout while the worker is idle.

It needs Redis >= 6.2 (BLMOVE) and scripting; without them the channel says so once and falls
back to kombu's BRPOP.

kombu's private hooks (``_put``, ``_brpop_start``, ``_brpop_read``, ``qos._delivered``, ...)
are reached through worker/broker/compat.py, under public names.

Poison. kombu parses a popped message in the worker's event loop; a body that is not JSON (or
JSON of the wrong shape) raises out of it and Celery stops the worker with "Unrecoverable
error": any process able to LPUSH to a queue could stop every worker. Such a message is dropped
and logged here instead: it is already off the list, and nothing could ever run it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from worker.broker.compat import KombuChannel, KombuQoS
from worker.lua import source

logger = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# worker/lua/reliable_fetch.lua: pop the first message of the queues and record it unacked.
FETCH_SCRIPT = source("reliable_fetch")
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode()).hexdigest()

_FETCH, _WAIT = "fetch", "wait"


@functools.cache
def _consumer_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


def consumer_id() -> str:
    """This process's name among the fleet's consumers (a new one after a fork)."""
    return _consumer_id(os.getpid())


def held_key(unacked_key: str, consumer: str | None = None) -> str:
    """The set of delivery tags ``consumer`` (default: this process) holds unacknowledged."""
    return f"{unacked_key}:held:{consumer or consumer_id()}"


class QoS(KombuQoS):
    def append(self, message: Any, delivery_tag: Any) -> None:
        prerecorded = self.channel._prerecorded
        if delivery_tag in prerecorded:
            # The fetch script already wrote it to the unacked hash and index.
            prerecorded.discard(delivery_tag)
            self.append_in_memory(message, delivery_tag)
            return
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]
        with self.channel.conn_or_acquire() as client:  # BRPOP: held by this consumer too
            client.sadd(self.channel._key(held_key(self.unacked_key)), delivery_tag)

    def remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        pipe = super().remove_from_indices(delivery_tag, pipe)
        return pipe.srem(self.channel._key(held_key(self.unacked_key)), delivery_tag)

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
        # "Unrecoverable error". A message
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


class Channel(KombuChannel):
    QoS = QoS

    #: Seconds an idle channel blocks on its first queue before it looks at all its queues
    #: again; the longest a message on another queue waits while the worker is idle.
    fetch_wait_idle = 1.0
    #: The same while the worker holds messages (a job in flight will publish its next step).
    fetch_wait_busy = 0.2
    #: False: kombu's BRPOP, which can lose a message popped by a worker killed before it
    #: recorded it.
    reliable_fetch = True

    from_transport_options = (  # type: ignore[assignment]
        *kombu_redis.Channel.from_transport_options,
        "fetch_wait_idle",
        "fetch_wait_busy",
        "reliable_fetch",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._prerecorded: set[str] = set()
        self._sent: str | None = None  # what the pending reply answers: _FETCH or _WAIT
        self._wait_next = False
        self._script_cached = False
        self._pause_until = 0.0
        self._reliable = bool(self.reliable_fetch) and bool(self.ack_emulation)
        self._thread_clients = threading.local()

    # -- clients ---------------------------------------------------------------------------

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """kombu makes a new client object for every publish and every ack from a worker thread
        (a tenth of an entry task's CPU, bench/pollcost.py's profile): each thread keeps one
        here, on the channel's own pool (a pool replaced after a fork gets a new one)."""
        if client:
            yield client
            return
        mine = getattr(self._thread_clients, "client", None)
        if mine is None or mine.connection_pool is not self.pool:
            mine = self._thread_clients.client = self.new_client()
        yield mine

    # -- sending ---------------------------------------------------------------------------

    def fetch_start(self, timeout: Any = None) -> None:
        if not self._reliable:
            super().fetch_start(timeout)
            return
        if monotonic() < self._pause_until:
            return  # after a Redis error: the hub calls again on a later tick
        queues = self.next_queues()
        if not queues:
            return
        if self._wait_next:
            key = self._key(self.active_queues[0])
            wait = self.fetch_wait_busy if self.qos.delivered else self.fetch_wait_idle
            command: list[Any] = ["BLMOVE", key, key, "RIGHT", "RIGHT", wait]
            self._sent = _WAIT
        else:
            keys = [
                self._key(self.unacked_key),
                self._key(self.unacked_index_key),
                self._key(held_key(self.unacked_key)),
            ]
            keys += [
                self._key(self.priority_queue(queue, pri))
                for pri in self.priority_steps
                for queue in queues
            ]
            script = ["EVALSHA", FETCH_SHA] if self._script_cached else ["EVAL", FETCH_SCRIPT]
            command = [*script, len(keys), *keys, repr(time())]
            self._sent = _FETCH
        connection = self.client.connection
        self.poll_sent(connection)
        connection.send_command(*command)

    def _key(self, name: str) -> str:
        return f"{self.global_keyprefix or ''}{name}"

    # -- reading ---------------------------------------------------------------------------

    def fetch_read(self, **options: Any) -> bool:
        if not self._reliable or self._sent is None:
            return self._read_guarded(super().fetch_read, **options)
        sent = self._sent
        try:
            try:
                reply = self.client.parse_response(
                    self.client.connection, "EVALSHA" if sent == _FETCH else "BLMOVE", **options
                )
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except self.ResponseError as exc:
                self._on_error(sent, exc)
                raise Empty() from None
            if sent == _FETCH:
                self._script_cached = True
            if sent == _WAIT or not reply:
                self._wait_next = sent == _FETCH  # fetched nothing: wait; woke up: fetch
                raise Empty()
            return self._read_guarded(self._deliver_fetched, reply)
        finally:
            self._sent = None
            self.poll_done()

    def _deliver_fetched(self, reply: list[Any]) -> bool:
        key = _text(reply[0])[len(self.global_keyprefix or "") :]
        tag = _text(reply[2]) if len(reply) > 2 else None
        dest = key.rsplit(self.sep, 1)[0]
        self.rotate_queue(dest)
        try:
            payload = loads(_text(reply[1]))  # type: ignore[no-untyped-call]
        except BaseException:
            if tag is not None:
                # Recorded but never deliverable: forget it, or the restore sweep would bring
                # it back after every visibility timeout.
                self.qos.remove_from_indices(tag).execute()
            raise
        if tag is not None:
            self._prerecorded.add(tag)
        try:
            self.deliver(payload, dest)
        finally:
            if tag is not None:
                # Normally QoS.append took it; a message for a queue nobody here consumes is
                # appended on another channel and requeued by kombu.
                self._prerecorded.discard(tag)
        return True

    def _read_guarded(self, read: Any, *args: Any, **options: Any) -> bool:
        delivered = self.qos.delivered  # tag -> message, kombu's record of unacked messages
        before = set(delivered)
        try:
            return bool(read(*args, **options))
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

    def _on_error(self, sent: str, exc: Exception) -> None:
        text = str(exc)
        if isinstance(exc, NoScriptError):
            self._script_cached = False  # Redis restarted or flushed its script cache
            return
        if "unknown command" in text.lower() or "scripting" in text.lower():
            self._reliable = False
            logger.warning(
                "Redis refused %s (%s): reliable fetch needs Redis >= 6.2 with scripting; "
                "falling back to kombu's BRPOP, which can lose a message popped by a worker "
                "killed before it recorded it",
                "BLMOVE" if sent == _WAIT else "EVAL",
                text[:200],
            )
            return
        # Out of memory, a queue key of the wrong type, a busy script: nothing was popped.
        logger.error(
            "Redis refused a %s (%s: %s); trying again in 1 s", sent, type(exc).__name__, text[:200]
        )
        self._wait_next = False
        self._pause_until = monotonic() + 1.0


class Transport(kombu_redis.Transport):
    Channel = Channel
