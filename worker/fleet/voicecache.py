"""Akool's voice list kept in Redis: refreshed by beat, read by ``akool-audio voices`` and used to
refuse an unknown ``voice_id`` before anything is sent to Akool.

Three keys, replaced together in one transaction and all expiring after ``VOICE_CACHE_TTL``: the
raw list (JSON), the set of ids, and the time of the refresh. No key means no fresh cache, and
then nothing is refused: Akool remains the judge. A voice made at Akool after the last refresh
would look unknown, so a miss triggers one refresh in line (at most once a minute per fleet)
before the request is refused.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from config.settings import Settings
from worker.akool import AkoolClient
from worker.akool import errors as akool_errors
from worker.fleet.ratelimit import RateLimiter

MISS_REFRESH_GAP = 60.0


@dataclass(frozen=True)
class Cached:
    voices: list[dict[str, Any]]
    fetched_at: float

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched_at)


class VoiceCache:
    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.ttl = settings.voice_cache_ttl
        self.list_key = settings.key("voices", "list")
        self.ids_key = settings.key("voices", "ids")
        self.at_key = settings.key("voices", "fetched_at")
        self.miss_key = settings.key("voices", "miss-refresh")

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def store(self, voices: list[dict[str, Any]]) -> None:
        if not self.enabled:
            return
        ttl_ms = int(self.ttl * 1000)
        ids = [str(v["voice_id"]) for v in voices if v.get("voice_id")]
        tmp = f"{self.ids_key}:tmp:{time.time_ns()}"
        with self.r.pipeline(transaction=True) as pipe:
            if ids:
                pipe.sadd(tmp, *ids)
                pipe.rename(tmp, self.ids_key)
            else:
                pipe.delete(self.ids_key)
            pipe.set(self.list_key, json.dumps(voices), px=ttl_ms)
            pipe.set(self.at_key, time.time(), px=ttl_ms)
            if ids:
                pipe.pexpire(self.ids_key, ttl_ms)
            pipe.execute()

    def load(self) -> Cached | None:
        """The cached list if it is fresh, else None."""
        raw, at = cast(list[Any], self.r.mget([self.list_key, self.at_key]))
        if raw is None or at is None:
            return None
        return Cached(json.loads(raw), float(at))

    def knows(self, voice_id: str) -> bool | None:
        """True/False when the cache is fresh, None when there is no fresh cache."""
        if not self.enabled or not self.r.exists(self.at_key):
            return None
        return bool(self.r.sismember(self.ids_key, voice_id))

    def may_refresh_on_miss(self) -> bool:
        return bool(self.r.set(self.miss_key, 1, nx=True, px=int(MISS_REFRESH_GAP * 1000)))


def refresh(cache: VoiceCache, client: AkoolClient, limiter: RateLimiter) -> tuple[int, float]:
    """Fetch both voice sources and store them: (voices stored, 0), or (0, seconds to wait) when
    the fleet's shared rate limit says not now."""
    wait, _ = limiter.reserve(max_wait=0)
    if wait <= 0:
        wait = limiter.pace()
    if wait > 0:
        return 0, float(wait)
    voices = client.list_voices(None)
    cache.store([dict(v.raw) for v in voices])
    return len(voices), 0.0


def check_voice(
    cache: VoiceCache, client: AkoolClient, limiter: RateLimiter, voice_id: str
) -> str | None:
    """An error message if ``voice_id`` is certainly unknown, else None."""
    known = cache.knows(voice_id)
    if known is None or known:
        return None
    if cache.may_refresh_on_miss():
        try:
            _, wait = refresh(cache, client, limiter)
        except akool_errors.AkoolError:
            return None  # cannot tell: let Akool decide
        if wait > 0 or cache.knows(voice_id) is not False:
            return None
    cached = cache.load()
    age = f"{cached.age:.0f} s ago" if cached else "recently"
    return (
        f"unknown voice_id {voice_id!r}: it is not in Akool's voice list (refreshed {age}); "
        "`akool-audio voices` lists the voices"
    )
