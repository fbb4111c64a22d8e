"""Send jobs the way another backend would, and wait for them on the events channel."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import redis
from celery import Celery

VOICE = "piTKgcLEGmPE4e6mEKli"  # an official sandbox voice (from 3)
EVENTS = "akool-audio:events"


def text_of(words: int, rng: random.Random | None = None) -> str:
    rng = rng or random.Random()
    return " ".join(f"w{rng.randrange(10_000)}" for _ in range(max(1, words)))


@dataclass
class Waiter:
    """Subscribed before the first job is sent, so no completion is missed."""

    r: redis.Redis
    channel: str = EVENTS
    done: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ps = self.r.pubsub(ignore_subscribe_messages=True)
        self.ps.subscribe(self.channel)

    def wait(self, ids: Iterable[str], timeout: float) -> dict[str, float]:
        """Completion time (on arrival here) of each job in ``ids``; missing ones time out."""
        want = set(ids) - set(self.done)
        deadline = time.monotonic() + timeout
        while want and time.monotonic() < deadline:
            msg = self.ps.get_message(timeout=0.5)
            if msg is None:
                continue
            job_id = json.loads(msg["data"]).get("job_id")
            self.done[job_id] = time.time()
            want.discard(job_id)
        return {i: self.done[i] for i in ids if i in self.done}

    def close(self) -> None:
        self.ps.close()


def send_create(caller: Celery, text: str, job_id: str | None = None, **extra: str) -> str:
    job_id = job_id or uuid.uuid4().hex
    kwargs = {"input_text": text, "voice_id": VOICE, "job_id": job_id, **extra}
    caller.send_task("audio.create", kwargs=kwargs, queue="audio")
    return job_id


def send_many(caller: Celery, n: int, text: Callable[[int], str]) -> list[str]:
    return [send_create(caller, text(i)) for i in range(n)]
