"""One rate limit for every call to Akool from every worker: a token bucket in Redis.

The bucket lives in one hash and is updated by one Lua script that reads Redis's own clock
(``TIME``), so workers on many hosts share the limit without trusting their clocks. A caller
that finds no token reserves the next free slot and reschedules itself to it; nothing blocks a
worker slot, and waiting callers do not come back all at once.
Akool's code 1005 ("too frequent") halves the rate for ``penalty_seconds`` (down to a tenth).
"""

from __future__ import annotations

import redis

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local factor = tonumber(redis.call('GET', KEYS[2]) or '1')
rate = rate * factor
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""

# Like _ACQUIRE, but a caller that must wait up to ARGV[3] s takes its token now (the bucket
# goes negative): it owns a slot at now + wait, so waiting callers are spaced out exactly
# instead of all retrying and finding the bucket empty again. Returns {wait, reserved}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1]) * tonumber(redis.call('GET', KEYS[2]) or '1')
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
local reserved = 1
if tokens < 1 then wait = (1 - tokens) / rate end
if wait <= tonumber(ARGV[3]) then tokens = tokens - 1 else reserved = 0 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return {tostring(wait), reserved}
"""

_PENALIZE = """
local f = tonumber(redis.call('GET', KEYS[1]) or '1') * 0.5
if f < 0.1 then f = 0.1 end
redis.call('SET', KEYS[1], tostring(f), 'EX', ARGV[1])
return tostring(f)
"""


class RateLimiter:
    """A shared token bucket: ``acquire()`` returns 0.0 when a call may go now, else the wait."""

    def __init__(
        self, r: redis.Redis, key: str, rate: float, burst: float, penalty_seconds: int = 30
    ) -> None:
        self._acquire = r.register_script(_ACQUIRE)
        self._penalize = r.register_script(_PENALIZE)
        self._reserve = r.register_script(_RESERVE)
        self.bucket_key = key
        self.penalty_key = key + ":penalty"
        self.rate = rate
        self.burst = max(1.0, burst)
        self.penalty_seconds = penalty_seconds

    def acquire(self) -> float:
        wait = self._acquire(keys=[self.bucket_key, self.penalty_key], args=[self.rate, self.burst])
        return float(wait)

    def reserve(self, max_wait: float) -> tuple[float, bool]:
        """Take a token now or a slot in the next ``max_wait`` seconds.

        Returns (wait, reserved): with ``reserved`` the caller may call Akool after ``wait``
        seconds without asking again; otherwise it should ask again after ``wait``.
        """
        wait, reserved = self._reserve(
            keys=[self.bucket_key, self.penalty_key], args=[self.rate, self.burst, max_wait]
        )
        return float(wait), bool(int(reserved))

    def penalize(self) -> float:
        """Slow the shared rate down after Akool said 1005; returns the new factor."""
        return float(self._penalize(keys=[self.penalty_key], args=[self.penalty_seconds]))
