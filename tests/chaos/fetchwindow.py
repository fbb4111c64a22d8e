"""The fetch window, measured: consumers SIGKILLed at random moments while they drain a queue,
once with kombu's BRPOP and once with our reliable fetch (worker/broker/reliable_redis.py).

kombu's Redis transport pops a message (BRPOP) before the consumer records it as unacked; a
consumer killed in between loses the message. Celery workers die the same way, but take
seconds to start, so this drives plain kombu consumers (the code path Celery's worker uses:
``drain_events`` -> BRPOP or fetch -> deliver -> ack), many kills a minute.

Every message carries an id; the consumer counts each delivery in a Redis hash before it acks.
After the kills, one last consumer brings back what dead consumers held (kombu's restore sweep,
visibility timeout 1 s) and drains the queue. Lost = ids never delivered.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict, dataclass
from typing import Any

import redis
from kombu import Connection, Consumer, Producer, Queue

from tests.support.procs import ROOT

STOCK = "redis"
OURS = "worker.broker.reliable_redis:Transport"
QUEUE = "fetchwindow"
SEEN = "fetchwindow:seen"
VISIBILITY = 1.0

CONSUMER = """
import sys
import redis
from kombu import Connection, Consumer, Queue
url, transport, queue, seen = sys.argv[1:5]
r = redis.Redis.from_url(url)
conn = Connection(url, transport=transport, transport_options={"visibility_timeout": 3600})

def on_message(body, message):
    r.hincrby(seen, body["id"], 1)
    message.ack()

with Consumer(conn, [Queue(queue)], callbacks=[on_message], prefetch_count=4):
    print("ready", flush=True)
    while True:
        try:
            conn.drain_events(timeout=1)
        except TimeoutError:
            pass
"""


@dataclass
class WindowFigures:
    transport: str
    messages: int
    kills: int
    delivered: int
    lost: int
    duplicates: int
    seconds: float


def _consumer(url: str, transport: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CONSUMER), url, transport, QUEUE, SEEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"ready", line
    return proc


def run(url: str, transport: str, *, messages: int, kills: int, seed: int) -> WindowFigures:
    """Publish ``messages``, then start a consumer and SIGKILL it after 20-200 ms, ``kills``
    times (or until the queue is empty), then recover and drain with one consumer."""
    rnd = random.Random(seed)
    r = redis.Redis.from_url(url)
    r.delete(QUEUE, SEEN, "unacked", "unacked_index")
    started = time.monotonic()
    with Connection(url) as conn:
        producer = Producer(conn.channel())
        for i in range(messages):
            producer.publish(
                {"id": i}, routing_key=QUEUE, serializer="json", declare=[Queue(QUEUE)]
            )
    done_kills = 0
    while done_kills < kills and r.llen(QUEUE):
        proc = _consumer(url, transport)
        time.sleep(rnd.uniform(0.02, 0.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        done_kills += 1
    # Recovery: what the dead consumers held comes back after the visibility timeout. A consumer
    # killed inside kombu's restore sweep leaves its mutex for 5 minutes; all of them are dead.
    time.sleep(VISIBILITY + 0.5)
    r.delete("unacked_mutex")
    options = {"visibility_timeout": VISIBILITY}
    with Connection(url, transport=transport, transport_options=options) as conn:
        conn.default_channel.qos.restore_visible(num=messages)

        def on_message(body: Any, message: Any) -> None:
            r.hincrby(SEEN, body["id"], 1)
            message.ack()

        with Consumer(conn, [Queue(QUEUE)], callbacks=[on_message]):
            quiet = 0
            while quiet < 3:
                try:
                    conn.drain_events(timeout=1)
                    quiet = 0
                except TimeoutError:
                    quiet += 1
    counts = [int(v) for v in r.hvals(SEEN)]
    assert r.llen(QUEUE) == 0 and r.hlen("unacked") == 0
    r.close()
    return WindowFigures(
        transport="kombu BRPOP" if transport == STOCK else "reliable fetch",
        messages=messages,
        kills=done_kills,
        delivered=len(counts),
        lost=messages - len(counts),
        duplicates=sum(counts) - len(counts),
        seconds=round(time.monotonic() - started, 1),
    )


def write(path: Any, figures: list[WindowFigures]) -> None:
    path.write_text(json.dumps([asdict(f) for f in figures], indent=2) + "\n")


def main() -> None:  # pragma: no cover - a manual run: python -m tests.chaos.fetchwindow URL
    url = sys.argv[1]
    for transport in (STOCK, OURS):
        with contextlib.suppress(KeyboardInterrupt):
            print(run(url, transport, messages=3000, kills=60, seed=5))


if __name__ == "__main__":
    main()
