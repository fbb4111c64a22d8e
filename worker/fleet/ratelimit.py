"""One rate limit for every call to Akool from every worker: a token bucket in Redis.

The bucket lives in one hash and is updated by one Lua script that reads Redis's own clock
(``TIME``), so workers on many hosts share the limit without trusting their clocks. A caller
that finds no token reserves the next free slot and reschedules itself to it; nothing blocks a
worker slot, and waiting callers do not come back all at once. A reservation is a plan: a busy
worker may run it late, next to the call of the following slot, so the call itself passes one
more check at the moment it is sent (``pace``), which spaces the calls Akool sees.
Akool's code 1005 ("too frequent") halves the rate for ``penalty_seconds`` (down to a tenth).
"""

from __future__ import annotations

import redis

from worker.lua import ratelimit_script, source


class RateLimiter:
    """A shared token bucket (``worker/lua/ratelimit_*.lua``).

    ``acquire`` answers whether a job's call may go now; a job that must wait reserves a slot
    and holds it under ``held_prefix``, so it comes back exactly then and calls without asking
    again. ``reserve(0)`` and ``pace`` are the two checks alone (the voice cache's refresh).
    """

    def __init__(
        self,
        r: redis.Redis,
        key: str,
        rate: float,
        burst: float,
        penalty_seconds: int = 30,
        held_prefix: str = "",
    ) -> None:
        self._r = r
        self._penalize = r.register_script(source("ratelimit_penalize"))
        self._reserve = r.register_script(ratelimit_script("ratelimit_reserve"))
        self._pace = r.register_script(ratelimit_script("ratelimit_pace"))
        self._acquire = r.register_script(ratelimit_script("ratelimit_acquire"))
        self.bucket_key = key
        self.pace_key = key + ":pace"
        self.penalty_key = key + ":penalty"
        self.held_prefix = held_prefix or key + ":held"
        self.rate = rate
        self.burst = max(1.0, burst)
        self.penalty_seconds = penalty_seconds

    def acquire(self, holder: str, max_wait: float, hold_extra: float = 120) -> tuple[float, str]:
        """Everything a call asks the limit, in one round trip (a slot held earlier, else
        ``reserve``, then ``pace``). Returns (wait, outcome): ``(0.0, "go")`` to call
        now; else come back after ``wait`` s: ``"reserved"`` or ``"paced"`` (the slot is held
        by ``holder`` for ``wait + hold_extra`` s, the next call goes without asking the bucket)
        or ``"retry"`` (no slot within ``max_wait``; nothing held)."""
        wait, outcome = self._acquire(
            keys=[self.bucket_key, self.pace_key, self.penalty_key, self._held(holder)],
            args=[self.rate, self.burst, max_wait, hold_extra],
        )
        return float(wait), outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    def reserve(self, max_wait: float) -> tuple[float, bool]:
        """Take a token now or a slot in the next ``max_wait`` seconds.

        Returns (wait, reserved): with ``reserved`` the caller may call Akool after ``wait``
        seconds without asking again; otherwise it should ask again after ``wait``.
        """
        wait, reserved = self._reserve(
            keys=[self.bucket_key, self.penalty_key], args=[self.rate, self.burst, max_wait]
        )
        return float(wait), bool(int(reserved))

    def pace(self) -> float:
        """0.0 when a call that owns a token may be sent now (and it is counted as sent), else
        the seconds until it may: calls are never closer than the rate allows, beyond the
        burst, whenever their reservations were made."""
        wait = self._pace(keys=[self.pace_key, self.penalty_key], args=[self.rate, self.burst])
        return float(wait)

    def _held(self, holder: str) -> str:
        return f"{self.held_prefix}:{holder}"

    def state(self) -> dict[str, float]:
        """What the bucket holds now, read only (for /v1/stats): tokens (negative while slots
        are reserved ahead), the penalty factor after 1005 and the seconds it has left."""
        with self._r.pipeline(transaction=False) as pipe:
            pipe.time()
            pipe.hmget(self.bucket_key, ["tokens", "ts"])
            pipe.get(self.penalty_key)
            pipe.pttl(self.penalty_key)
            (sec, usec), (tokens, ts), factor, pttl = pipe.execute()
        now, factor = sec + usec / 1e6, float(factor or 1.0)
        held = self.burst if tokens is None else float(tokens)
        elapsed = max(0.0, now - float(ts)) if ts is not None else 0.0
        return {
            "tokens": round(min(self.burst, held + elapsed * self.rate * factor), 3),
            "burst": self.burst,
            "rate": self.rate,
            "penalty_factor": factor,
            "penalty_seconds_left": max(0.0, int(pttl) / 1000),
        }

    def penalize(self) -> float:
        """Slow the shared rate down after Akool said 1005; returns the new factor."""
        return float(self._penalize(keys=[self.penalty_key], args=[self.penalty_seconds]))
