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

A lost connection. When its connection is lost Celery restarts the consumer: it drops the
tasks it had reserved and the countdown tasks it was waiting on (celery/worker/consumer
``on_close``), keeps running those that started, and consumes again on a new channel. Redis still
lists every dropped message as unacked and held by this consumer, whose heartbeat is fresh: before,
nothing returned them before the visibility timeout. Now the new channel, before its first fetch,
returns every tag of its held set that this process no longer runs (worker/lua/release_held.lua,
then kombu's ``restore_by_tag``, a WATCHed transaction: once, whoever else restores). A task still
running acks or rejects through a channel that is still connected (or, with none, on the next
reconnect), not through its torn-down one; restoring at channel close leaves running tasks alone.

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
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from worker.broker.compat import KombuChannel, KombuQoS, running_tags
from worker.lua import source

logger = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# worker/lua/reliable_fetch.lua: pop the first message of the queues and record it unacked.
FETCH_SCRIPT = source("reliable_fetch")
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode()).hexdigest()

_FETCH, _WAIT = "fetch", "wait"

# worker/lua/release_held.lua: take what this consumer no longer holds out of its held set.
RELEASE_SCRIPT = source("release_held")

#: This process's channels of this transport (a late ack finds a connected one here).
_CHANNELS: weakref.WeakSet[Channel] = weakref.WeakSet()
#: Acks (False) and requeues (True) of tasks that ended while no channel was connected; applied
#: by the next channel before it fetches.
_PENDING: dict[str, bool] = {}
_PENDING_LOCK = threading.Lock()


def _connected_channel(but: Any = None) -> Channel | None:
    for channel in list(_CHANNELS):
        if channel is not but and channel.connected():
            return channel
    return None


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
        # raises AttributeError there and Celery stops the worker. It goes through a connected
        # channel instead (the same Redis keys), or waits for the next one.
        if self._torn_down():
            self._settle_elsewhere(delivery_tag, requeue=False)
            return
        super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._torn_down():
            self._settle_elsewhere(delivery_tag, requeue=requeue)
            return
        super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]

    def _settle_elsewhere(self, delivery_tag: Any, requeue: bool) -> None:
        self.ack_in_memory(delivery_tag)
        live = _connected_channel(but=self.channel)
        if live is not None:
            try:
                live.settle(str(delivery_tag), requeue)
                return
            except live.connection_errors as exc:
                logger.warning("late %s deferred: %s", "requeue" if requeue else "ack", exc)
        with _PENDING_LOCK:
            _PENDING[str(delivery_tag)] = requeue

    def restore_unacked(self, client: Any = None) -> None:
        if self._torn_down():
            return
        # Called when a channel closes. After a lost connection Celery closes the channel of a
        # connection that is already torn down, and kombu 5.7 raises AttributeError ("'NoneType'
        # object has no attribute 'hostname'") out of here: Celery then stops the worker with
        # "Unrecoverable error". A message not restored here is returned by the next channel
        # before it fetches (Channel.release_dropped). Tasks still running are not restored:
        # they ack when they end (a restore would run them twice at once).
        running = running_tags()
        try:
            with self.channel.conn_or_acquire(client) as conn:
                for tag in [t for t in self.delivered if t not in running]:
                    self.restore_by_tag(tag, client=conn)  # type: ignore[no-untyped-call]
                    self.delivered.pop(tag, None)
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
        self._released = False
        _CHANNELS.add(self)

    def connected(self) -> bool:
        """Open, and its connection not torn down (a client can be made on it)."""
        transport = self.connection
        return (
            not self.closed
            and transport is not None
            and getattr(transport, "client", None) is not None
        )

    def settle(self, tag: str, requeue: bool) -> None:
        """Ack (forget) or requeue a message another channel of this process delivered."""
        with self.conn_or_acquire() as client:
            if requeue:
                self.qos.restore_by_tag(tag, client=client, leftmost=True)
            else:
                self.qos.remove_from_indices(tag, client.pipeline()).execute()

    def release_dropped(self) -> int:
        """Return to their queues the messages this consumer is listed as holding but no
        longer holds (dropped by Celery when its last connection was lost); returns how
        many. Run once per channel, before its first fetch."""
        with _PENDING_LOCK:
            pending = dict(_PENDING)
        for tag, requeue in pending.items():
            self.settle(tag, requeue)
            with _PENDING_LOCK:
                _PENDING.pop(tag, None)
        keep = running_tags() | set(self.qos.delivered)
        for channel in list(_CHANNELS):
            if channel is not self and channel.connected():
                keep |= {str(t) for t in channel.qos.delivered}
        with self.conn_or_acquire() as client:
            held = self._key(held_key(self.unacked_key))
            tags = [_text(t) for t in client.eval(RELEASE_SCRIPT, 1, held, *sorted(keep))]
            for tag in tags:
                # At the head of its queue, as a dead worker's (it waited longest).
                self.qos.restore_by_tag(tag, client=client, leftmost=True)
        self._released = True
        if tags:
            logger.warning(
                "returned %d message(s) dropped when the connection to Redis was lost", len(tags)
            )
        return len(tags)

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
        if not self._released:
            self.release_dropped()  # a Redis error here is the consumer's connection error
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
