"""Parked polls: a poll that waits longer than ``POLL_PARK_THRESHOLD`` is kept in Redis, not
held by a worker as a countdown message, and pushed onto the ``poll`` queue when it is due.

- :meth:`Parking.park` (worker/lua/job_park.lua) scores the job id in ``{prefix}:parked`` by
  when it is due; the message to push (the rest of the job's chain as kombu would LPUSH it,
  built by tasks/chains.py with worker/broker/compat.py) is kept in the job's hash, once per
  attempt.
- :class:`Dispatcher`, a thread in every worker (worker/broker/fleetloop.py), pushes the due
  ones onto their queue, oldest first, in batches of one Lua call each
  (worker/lua/dispatch_due.lua). Any number may run at once, since each batch takes its polls
  out of the set in the same call that pushes them; a dispatcher killed mid-batch has either
  moved the batch or not. It never queues more polls than the fleet's shared Akool rate can
  serve in ``HORIZON`` seconds (minus those already queued): the rest wait in the set, where
  they cost no worker anything.
"""

from __future__ import annotations

import logging
import threading
import time
from enum import IntEnum

import redis

from config.celeryconfig import QUEUE_POLL
from config.settings import Settings
from worker.jobs.keys import JobKeys
from worker.jobs.record import JobState
from worker.lua import job_script, source

log = logging.getLogger(__name__)

#: Seconds of the shared rate the poll queue may hold.
HORIZON = 2.0


class Parked(IntEnum):
    """What :meth:`Parking.park` did (worker/lua/job_park.lua's answer)."""

    MOVED_ON = 0  #: the job no longer waits for Akool: nothing was parked
    PARKED = 1
    NO_MESSAGE = 2  #: no message is kept for this attempt yet: park again with one


class Parking:
    def __init__(self, r: redis.Redis, keys: JobKeys) -> None:
        self._r = r
        self._keys = keys
        self._park = r.register_script(job_script("job_park"))
        self._dispatch = r.register_script(source("dispatch_due"))

    @property
    def parked_key(self) -> str:
        return self._keys.parked

    @property
    def parked_messages_key(self) -> str:
        return self._keys.parked_messages

    def park(
        self,
        job_id: str,
        due: float,
        queue: str = "",
        message: str = "",
        state: JobState = JobState.SUBMITTED,
    ) -> Parked:
        """Keep the job's next step until ``due``: ``message`` (kombu's payload for the list
        ``queue``) or, without one, the message kept from the job's last park (one per state
        of an attempt, worker/lua/job_park.lua). ``state`` is the one the job waits in: its
        speech's poll while ``submitted``, a v4 clone stage's resume while ``accepted``."""
        keys = self._keys.script(job_id, self.parked_key, self.parked_messages_key)
        args: list[str | float] = [job_id, due, queue, message, state.value]
        return Parked(int(self._park(keys=keys, args=args)))

    def parked_due(self, job_id: str) -> float | None:
        """When a parked poll of this job is due; None when none is parked."""
        score = self._r.zscore(self.parked_key, job_id)
        return None if score is None else float(score)

    def unpark(self, job_id: str) -> None:
        with self._r.pipeline(transaction=False) as pipe:
            pipe.zrem(self.parked_key, job_id)
            pipe.hdel(self.parked_messages_key, job_id)
            pipe.execute()

    def dispatch_due(
        self, limit: int, rate: float, horizon: float, poll_queue: str, penalty_key: str
    ) -> tuple[int, float | None]:
        """Push the parked polls that are due onto their queue, oldest first, at most
        ``limit`` and no more than ``rate`` x ``horizon`` minus what waits in ``poll_queue``
        (worker/lua/dispatch_due.lua). Returns (moved, seconds until the next is due or None)."""
        moved, wait = self._dispatch(
            keys=[
                self.parked_key,
                self.parked_messages_key,
                penalty_key,
                poll_queue,
                self._keys.job(""),
            ],
            args=[time.time(), limit, rate, horizon],
        )
        return int(moved), None if float(wait) < 0 else float(wait)


class Dispatcher:
    """Moves due parked polls onto the ``poll`` queue; ``penalty_key`` is the shared rate
    limit's (``RateLimiter.penalty_key``), whose factor scales the room."""

    def __init__(self, parking: Parking, penalty_key: str, settings: Settings) -> None:
        self.parking = parking
        self.penalty_key = penalty_key
        self.s = settings
        self.moved = 0  # in this process, for logs and tests

    def run_once(self) -> tuple[int, float | None]:
        """One batch: (polls moved, seconds until the next parked poll is due or None)."""
        moved, wait = self.parking.dispatch_due(
            self.s.dispatch_batch, self.s.akool_rate_limit, HORIZON, QUEUE_POLL, self.penalty_key
        )
        self.moved += moved
        return moved, wait

    def run(self, stop: threading.Event) -> None:
        """Dispatch until ``stop`` is set: at once again after a full batch, else after
        ``DISPATCH_INTERVAL`` (sooner when the next poll is due sooner)."""
        pause = self.s.dispatch_interval
        while not stop.is_set():
            try:
                moved, wait = self.run_once()
            except redis.RedisError as exc:
                log.warning("dispatcher: %s; trying again", exc)
                stop.wait(min(5.0, pause * 4))
                continue
            if moved >= self.s.dispatch_batch:
                continue
            # Sooner when the next parked poll is due sooner; a poll that is due but waits for
            # room in the rate (wait 0) is looked at again after the interval.
            stop.wait(min(pause, wait) if wait else pause)
