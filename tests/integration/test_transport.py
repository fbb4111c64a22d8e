"""worker/broker/reliable_redis.py against a real redis-server: the reliable fetch records a
message as unacked in the same step that pops it, so a consumer killed while the reply is on its
way loses nothing; kombu's BRPOP, killed at the same point, loses the message (the control
below)."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Producer, Queue

from tests.support.procs import ROOT
from tests.support.redis import RedisServer
from tests.support.wait import until
from worker.broker.reliable_redis import FETCH_SHA

OURS = "worker.broker.reliable_redis:Transport"
QUEUES = ("audio", "poll", "notify")


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def connect(url: str, transport: str = OURS, **options: Any) -> Connection:
    return Connection(url, transport=transport, transport_options=options)


def publish(url: str, queue: str, body: dict[str, Any]) -> None:
    with Connection(url) as conn:
        Producer(conn.channel()).publish(
            body, routing_key=queue, serializer="json", declare=[Queue(queue)]
        )


def consume(conn: Connection, queues: tuple[str, ...], want: int, ack: bool = True) -> list[Any]:
    got: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        got.append(body)
        if ack:
            message.ack()

    def drained() -> bool:
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=1)
        return len(got) >= want

    with Consumer(conn, [Queue(q) for q in queues], callbacks=[on_message]):
        until(drained, 15, f"{want} message(s) from {queues}", interval=0)
    return got


def test_every_message_of_every_queue_arrives_and_acks_leave_nothing(
    redis_url: str, r: redis.Redis
) -> None:
    for i in range(30):
        publish(redis_url, QUEUES[i % 3], {"n": i})
    with connect(redis_url) as conn:
        got = consume(conn, QUEUES, 30)
    assert sorted(b["n"] for b in got) == list(range(30))
    assert r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0
    assert [r.llen(q) for q in QUEUES] == [0, 0, 0]


def test_a_message_held_unacked_is_recorded_in_kombus_format(
    redis_url: str, r: redis.Redis
) -> None:
    publish(redis_url, "poll", {"job": "j1"})
    with connect(redis_url) as conn:
        got = consume(conn, QUEUES, 1, ack=False)
        assert got == [{"job": "j1"}]
        (tag,) = r.hkeys("unacked")
        raw, exchange, routing_key = json.loads(r.hget("unacked", tag) or b"")
        assert raw["properties"]["delivery_tag"] == tag.decode()
        assert (exchange, routing_key) == ("", "poll")
        assert r.zscore("unacked_index", tag) == pytest.approx(time.time(), abs=30)
    # Closing the channel restores what it held, through kombu's own restore path.
    assert r.llen("poll") == 1 and r.hlen("unacked") == 0


KILLED_CONSUMER = """
import os, signal, sys, time
from kombu import Connection, Consumer, Queue
url, transport = sys.argv[1], sys.argv[2]
conn = Connection(url, transport=transport)
channel = conn.channel()
consumer = Consumer(channel, [Queue("audio")], callbacks=[lambda body, message: None])
consumer.consume()
conn.transport.cycle.on_poll_start()  # the worker's event loop: connect, send the fetch
time.sleep(0.5)         # the reply waits in the socket, unread
os.kill(os.getpid(), signal.SIGKILL)
"""


def kill_consumer_with_reply_in_flight(url: str, transport: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED_CONSUMER), url, transport],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]


def test_a_consumer_killed_with_the_reply_in_flight_loses_nothing(
    redis_url: str, r: redis.Redis
) -> None:
    publish(redis_url, "audio", {"job": "entry"})
    kill_consumer_with_reply_in_flight(redis_url, OURS)
    assert r.llen("audio") == 0
    assert r.hlen("unacked") == 1  # the dead consumer's message, waiting to be restored
    # Another consumer brings it back once the visibility timeout has passed.
    with connect(redis_url, visibility_timeout=1) as conn:
        time.sleep(1.5)
        conn.default_channel.qos.restore_visible(num=100)
        assert consume(conn, QUEUES, 1) == [{"job": "entry"}]
    assert r.hlen("unacked") == 0 and r.llen("audio") == 0


def test_control_kombus_brpop_killed_at_the_same_point_loses_the_message(
    redis_url: str, r: redis.Redis
) -> None:
    """Shows that the kill above lands in the window: with kombu's own transport the message
    is in neither the queue nor the unacked hash. (Should kombu ever close the window, this
    test fails and can go.)"""
    publish(redis_url, "audio", {"job": "entry"})
    kill_consumer_with_reply_in_flight(redis_url, "redis")
    assert r.llen("audio") == 0
    assert r.hlen("unacked") == 0


def test_poison_is_dropped_logged_and_leaves_nothing_behind(
    redis_url: str, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    r.lpush("audio", b"\xff not json")
    r.lpush("audio", json.dumps({"properties": {}}))  # JSON, not a kombu envelope
    r.lpush("audio", json.dumps([1, 2, 3]))
    # A kombu envelope Redis's Lua can decode (so it is recorded unacked) but Python cannot:
    # dropped, and its unacked record removed with it.
    envelope = {
        "delivery_tag": "t-bad-utf8",
        "delivery_info": {"exchange": "", "routing_key": "audio"},
    }
    r.lpush(
        "audio",
        json.dumps({"properties": envelope, "body": "X"})
        .replace('"X"', '"\xff"')
        .encode("latin-1"),
    )
    publish(redis_url, "audio", {"after": "poison"})
    with (
        caplog.at_level(logging.ERROR, logger="worker.broker.reliable_redis"),
        connect(redis_url) as conn,
    ):
        got = consume(conn, QUEUES, 1)
    assert got == [{"after": "poison"}]
    assert caplog.text.count("not a valid kombu message") == 4
    assert r.llen("audio") == 0 and r.hlen("unacked") == 0 and r.zcard("unacked_index") == 0


def test_a_flushed_script_cache_is_reloaded(redis_url: str, r: redis.Redis) -> None:
    publish(redis_url, "audio", {"n": 1})
    with connect(redis_url) as conn:
        assert consume(conn, QUEUES, 1) == [{"n": 1}]
        r.script_flush()  # what a Redis restart does
        publish(redis_url, "notify", {"n": 2})
        assert consume(conn, QUEUES, 1) == [{"n": 2}]
    assert r.script_exists(FETCH_SHA) == [True]


def test_out_of_memory_at_the_record_pops_nothing(
    redis_url: str, r: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis does not roll back a script that fails midway: the fetch must fail before it
    pops. With Redis full (noeviction) the message stays queued and arrives once there is room."""
    publish(redis_url, "audio", {"n": 1})
    before = r.config_get("maxmemory*")
    with (
        caplog.at_level(logging.ERROR, logger="worker.broker.reliable_redis"),
        connect(redis_url) as conn,
        Consumer(conn, [Queue("audio")], callbacks=[]),
    ):
        r.config_set("maxmemory-policy", "noeviction")
        r.config_set("maxmemory", 1)
        try:
            # kombu's own restore sweep (a SET) may fail the same way; that is not ours.
            with contextlib.suppress(TimeoutError, redis.exceptions.OutOfMemoryError):
                conn.drain_events(timeout=1)
        finally:
            r.config_set("maxmemory", before["maxmemory"])
            r.config_set("maxmemory-policy", before["maxmemory-policy"])
    assert "Redis refused a fetch (OutOfMemoryError" in caplog.text
    assert r.llen("audio") == 1 and r.hlen("unacked") == 0
    with connect(redis_url) as conn:
        assert consume(conn, QUEUES, 1) == [{"n": 1}]


def test_reliable_fetch_can_be_turned_off(redis_url: str, r: redis.Redis) -> None:
    publish(redis_url, "audio", {"n": 1})
    with connect(redis_url, reliable_fetch=False) as conn:
        assert consume(conn, QUEUES, 1) == [{"n": 1}]
        assert conn.default_channel._reliable is False
    assert r.hlen("unacked") == 0


def test_a_key_prefix_applies_to_queues_and_the_unacked_records(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    with connect(redis_url, global_keyprefix="tenant:") as conn:
        Producer(conn.channel()).publish(
            {"n": 7}, routing_key="poll", serializer="json", declare=[Queue("poll")]
        )
        assert client.llen("tenant:poll") == 1
        assert consume(conn, QUEUES, 1, ack=False) == [{"n": 7}]
        assert client.hlen("tenant:unacked") == 1 and client.exists("unacked") == 0
    client.close()


def test_wait_does_not_reorder_a_queue(redis_url: str, r: redis.Redis) -> None:
    # The wait is BLMOVE q q RIGHT RIGHT: with messages present it must leave them in order.
    for i in range(5):
        r.lpush("audio", str(i))
    r.blmove("audio", "audio", 1, "RIGHT", "RIGHT")
    assert r.lrange("audio", 0, -1) == [b"4", b"3", b"2", b"1", b"0"]


def test_a_redis_without_blmove_falls_back_to_brpop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis < 6.2 has no BLMOVE: the channel says so once and goes on with kombu's BRPOP."""
    old = RedisServer(tmp_path, extra=("--rename-command", "BLMOVE", "")).start()
    try:
        with (
            caplog.at_level(logging.WARNING, logger="worker.broker.reliable_redis"),
            connect(old.url) as conn,
        ):
            # Idle: the fetch finds nothing, then the wait is refused.
            with Consumer(conn, [Queue("poll")], callbacks=[]), contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=2)
            publish(old.url, "poll", {"n": 5})
            assert consume(conn, QUEUES, 1) == [{"n": 5}]
            assert conn.default_channel._reliable is False
        assert caplog.text.count("falling back to kombu's BRPOP") == 1
    finally:
        old.stop()
