"""Counts kept in memory and written to Redis in batches (:class:`Counters`): a step must not
pay a Redis round trip for a counter. Adding is thread-safe; a daemon thread writes every
``FLUSH_INTERVAL`` seconds in one pipelined batch, ``HINCRBY`` into the minute's bucket
(kept ``BUCKET_TTL`` seconds) and into the all-time hash. Counts that cannot be written (Redis
away) are kept for the next batch, so a batch whose answer was lost may count twice; a batch
Redis refuses is dropped and logged."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable

import redis

from worker.fleet.metricnames import BUCKET_TTL, bound_name, bucket_key, total_key

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 5.0


class Counters:
    """Counts kept in memory and written to Redis in batches.

    ``connect`` gives ``(client, key_prefix)`` when the first batch is written (None: counting
    is off in this process). ``start`` runs the flusher thread; ``flush`` writes now.
    """

    def __init__(
        self,
        connect: Callable[[], tuple[redis.Redis, str] | None],
        *,
        interval: float = FLUSH_INTERVAL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._connect = connect
        self._target: tuple[redis.Redis, str] | None = None
        self._connected = False
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._ints: dict[tuple[int, str], int] = {}
        self._floats: dict[tuple[int, str], float] = {}
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pid = os.getpid()

    def add(self, field: str, amount: int = 1) -> None:
        key = (int(self._clock() // 60), field)
        with self._lock:
            self._ints[key] = self._ints.get(key, 0) + amount

    def add_float(self, field: str, amount: float) -> None:
        key = (int(self._clock() // 60), field)
        with self._lock:
            self._floats[key] = self._floats.get(key, 0.0) + amount

    def observe(self, name: str, bounds: tuple[float, ...], value: float) -> None:
        """One observation of the histogram ``name``."""
        bound = next((b for b in bounds if value <= b), math.inf)
        key_minute = int(self._clock() // 60)
        with self._lock:
            for field in (f"{name}:{bound_name(bound)}", f"{name}:_count"):
                key = (key_minute, field)
                self._ints[key] = self._ints.get(key, 0) + 1
            key = (key_minute, f"{name}:_sum")
            self._floats[key] = self._floats.get(key, 0.0) + value

    def pending(self) -> int:
        with self._lock:
            return len(self._ints) + len(self._floats)

    def flush(self, *, quiet: bool = False) -> bool:
        """Write what was counted in one pipelined batch; False when it could not be written
        (the counts are kept for the next batch). ``quiet``: say so at debug level only."""
        with self._lock:
            ints, self._ints = self._ints, {}
            floats, self._floats = self._floats, {}
        if not ints and not floats:
            return True
        target = self._target_now()
        if target is None:
            return True  # counting is off in this process
        r, prefix = target
        try:
            self._write(r, prefix, ints, floats)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            self._keep(ints, floats)
            if not self._failing:
                level = logging.DEBUG if quiet else logging.WARNING
                log.log(level, "could not write fleet counters (%s); kept for later", exc)
            self._failing = True
            return False
        except redis.RedisError as exc:
            # Refused by Redis (a key of another type, out of memory): the rest of the batch
            # was applied, so keeping it would count it twice.
            log.error("Redis refused fleet counters (%s); this batch is dropped", exc)
            return False
        self._failing = False
        return True

    def connect_with(self, connect: Callable[[], tuple[redis.Redis, str] | None]) -> None:
        """Write the next batches where ``connect`` says."""
        self._connect, self._connected = connect, False

    def _target_now(self) -> tuple[redis.Redis, str] | None:
        if not self._connected:
            self._target = self._connect()
            self._connected = True
        return self._target

    @staticmethod
    def _write(
        r: redis.Redis,
        prefix: str,
        ints: dict[tuple[int, str], int],
        floats: dict[tuple[int, str], float],
    ) -> None:
        total = total_key(prefix)
        minutes: set[int] = set()
        with r.pipeline(transaction=True) as pipe:
            for (minute, field), n in ints.items():
                pipe.hincrby(bucket_key(prefix, minute), field, n)
                pipe.hincrby(total, field, n)
                minutes.add(minute)
            for (minute, field), x in floats.items():
                pipe.hincrbyfloat(bucket_key(prefix, minute), field, x)
                pipe.hincrbyfloat(total, field, x)
                minutes.add(minute)
            for minute in minutes:
                pipe.expire(bucket_key(prefix, minute), BUCKET_TTL)
            pipe.execute()

    def _keep(self, ints: dict[tuple[int, str], int], floats: dict[tuple[int, str], float]) -> None:
        with self._lock:
            for key, n in ints.items():
                self._ints[key] = self._ints.get(key, 0) + n
            for key, x in floats.items():
                self._floats[key] = self._floats.get(key, 0.0) + x

    def start(self) -> None:
        """Start the flusher thread (once)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="fleet-counters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
            except Exception:  # a counter must never end the thread that writes them
                log.exception("fleet counters: flush failed")
