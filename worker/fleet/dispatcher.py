"""The due-poll dispatcher: polls that wait longer than ``POLL_PARK_THRESHOLD`` are parked in
Redis (``JobStore.park``: the job id in the sorted set ``{KEY_PREFIX}:parked`` scored by when
it is due, and its next poll message beside it) instead of being countdown messages held in a
worker's memory. The dispatcher pushes the due ones onto the ``poll`` queue, oldest first, in
batches of one Lua call each (``worker/lua/dispatch_due.lua``).

Every worker runs one in a thread (worker/broker/fleetloop.py); any number may run at once,
since each batch takes its polls out of the set in the same call that pushes them. A dispatcher
killed mid-batch has either moved the batch or not. It never queues more polls than the fleet's
shared Akool rate limit can serve in ``HORIZON`` seconds (minus those already queued): the rest
wait in the set, where they cost no worker anything.
"""

from __future__ import annotations

import logging
import threading

import redis

from config.celeryconfig import QUEUE_POLL
from config.settings import Settings
from worker.fleet.ratelimit import RateLimiter
from worker.jobs import JobStore

log = logging.getLogger(__name__)

#: Seconds of the shared rate the poll queue may hold.
HORIZON = 2.0


class Dispatcher:
    def __init__(self, jobs: JobStore, limiter: RateLimiter, settings: Settings) -> None:
        self.jobs = jobs
        self.limiter = limiter
        self.s = settings
        self.moved = 0  # in this process, for logs and tests

    def run_once(self) -> tuple[int, float | None]:
        """One batch: (polls moved, seconds until the next parked poll is due or None)."""
        moved, wait = self.jobs.dispatch_due(
            self.s.dispatch_batch,
            self.s.akool_rate_limit,
            HORIZON,
            QUEUE_POLL,
            self.limiter.penalty_key,
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
