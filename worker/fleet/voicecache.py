"""Akool's voice lists kept in Redis: refreshed by beat, read by ``akool-audio voices`` and used to
refuse an unknown ``voice_id`` (and, for VoiceLab, an option the voice's model does not support)
before anything is sent to Akool.

One set of keys per API, replaced together in one transaction and all expiring after
``VOICE_CACHE_TTL``: the raw list (JSON), the set of ids, the time of the refresh and, for v4,
each voice's model (``voice_model_name``). v3's keys are ``voices:list|ids|fetched_at`` as they
always were; v4's are ``voices:v4:list|ids|at|models|miss`` (each API's adapter names its keys:
``SpeechApi.voice_cache``). No key means no fresh cache for that API, and then nothing is
refused: Akool remains the judge. A voice made at Akool after the last refresh would look
unknown, so a miss triggers one refresh of that API in line (at most once a minute per fleet)
before the request is refused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from config.settings import Settings
from worker.akool import AkoolClient
from worker.akool import errors as akool_errors
from worker.akool.audiorequest import LEGACY_API, AudioRequest
from worker.akool.speech import APIS as SPEECH_APIS
from worker.fleet.ratelimit import RateLimiter

log = logging.getLogger(__name__)

MISS_REFRESH_GAP = 60.0
APIS = tuple(SPEECH_APIS)


@dataclass(frozen=True)
class Cached:
    voices: list[dict[str, Any]]
    fetched_at: float

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.fetched_at)


@dataclass(frozen=True)
class _Keys:
    list: str
    ids: str
    at: str
    models: str
    miss: str


class VoiceCache:
    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.r = r
        self.ttl = settings.voice_cache_ttl
        self._keys = {
            name: _Keys(*(settings.key(*parts) for parts in api.voice_cache))
            for name, api in SPEECH_APIS.items()
        }
        # v3's names, as other modules and tests know them
        v3 = self._keys[LEGACY_API]
        self.list_key, self.ids_key, self.at_key, self.miss_key = v3.list, v3.ids, v3.at, v3.miss

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def store(self, voices: list[dict[str, Any]], api: str = LEGACY_API) -> None:
        """Replace ``api``'s list; a v4 record's ``voice_model_name`` is kept per voice."""
        if not self.enabled:
            return
        keys = self._keys[api]
        ttl_ms = int(self.ttl * 1000)
        ids = [str(v["voice_id"]) for v in voices if v.get("voice_id")]
        models = {
            str(v["voice_id"]): str(v["voice_model_name"])
            for v in voices
            if v.get("voice_id") and isinstance(v.get("voice_model_name"), str)
        }
        stamp = time.time_ns()
        with self.r.pipeline(transaction=True) as pipe:
            for key, fill in ((keys.ids, ids), (keys.models, models)):
                tmp = f"{key}:tmp:{stamp}"
                if fill:
                    if isinstance(fill, dict):
                        pipe.hset(tmp, mapping=cast(Any, fill))
                    else:
                        pipe.sadd(tmp, *fill)
                    pipe.rename(tmp, key)
                    pipe.pexpire(key, ttl_ms)
                else:
                    pipe.delete(key)
            pipe.set(keys.list, json.dumps(voices), px=ttl_ms)
            pipe.set(keys.at, time.time(), px=ttl_ms)
            pipe.execute()

    def load(self, api: str = LEGACY_API) -> Cached | None:
        """``api``'s cached list if it is fresh, else None."""
        keys = self._keys[api]
        raw, at = cast(list[Any], self.r.mget([keys.list, keys.at]))
        if raw is None or at is None:
            return None
        return Cached(json.loads(raw), float(at))

    def knows(self, voice_id: str, api: str = LEGACY_API) -> bool | None:
        """True/False when ``api``'s cache is fresh, None when there is no fresh cache."""
        keys = self._keys[api]
        if not self.enabled or not self.r.exists(keys.at):
            return None
        return bool(self.r.sismember(keys.ids, voice_id))

    def model_of(self, voice_id: str, api: str | None = None) -> str | None:
        """A voice's model (e.g. "Akool Multilingual 3", v4 only) in ``api``'s list, or in the
        first list that knows it; None when it is not known."""
        if not self.enabled:
            return None
        for name in (api,) if api is not None else APIS:
            model = self.r.hget(self._keys[name].models, voice_id)
            if model is not None:
                return str(model)
        return None

    def may_refresh_on_miss(self, api: str = LEGACY_API) -> bool:
        key = self._keys[api].miss
        return bool(self.r.set(key, 1, nx=True, px=int(MISS_REFRESH_GAP * 1000)))


def refresh(
    cache: VoiceCache,
    client: AkoolClient,
    limiter: RateLimiter,
    apis: Sequence[str] = APIS,
) -> tuple[dict[str, int], float]:
    """Fetch each API's voices (v3: both sources; v4: both types, page by page) and store
    them: ({api: voices stored}, 0), or ({}, seconds to wait) when the fleet's shared rate
    limit says not
    now. One token of the shared rate limit per API (a v4 list of several pages takes one). An
    API whose list fails leaves its cache as it was; its error is raised once the others are
    stored."""
    stored: dict[str, int] = {}
    failed = None
    for api in apis:
        wait, _ = limiter.reserve(max_wait=0)
        if wait <= 0:
            wait = limiter.pace()
        if wait > 0:  # come back for all of them (what was stored stays stored)
            return {}, float(wait)
        try:
            voices = SPEECH_APIS[api].list_voices(client, None)
        except akool_errors.AkoolError as exc:
            log.warning("could not refresh the %s voice list: %s", api, exc)
            failed = failed or exc
            continue
        cache.store([dict(v.raw) for v in voices], api)
        stored[api] = len(voices)
    if failed is not None:
        raise failed
    return stored, 0.0


def listed(
    cache: VoiceCache,
    client: Callable[[], AkoolClient] | None,
    limiter: RateLimiter,
    api: str = LEGACY_API,
) -> Cached | None:
    """``api``'s cached voices; on a miss, and when Akool may be called (``client`` makes the
    client, None without credentials), one refresh of that API in line (at most once a minute
    per fleet, shared with :func:`check_voice`), so a fresh deployment lists voices at once."""
    cached = cache.load(api)
    if cached is not None or client is None or not cache.may_refresh_on_miss(api):
        return cached
    try:
        refresh(cache, client(), limiter, (api,))
    except akool_errors.AkoolError as exc:
        log.warning("could not list the %s voices on a miss: %s", api, exc)
        return None
    return cache.load(api)


def check_voice(
    cache: VoiceCache,
    client: AkoolClient,
    limiter: RateLimiter,
    voice_id: str,
    api: str = LEGACY_API,
) -> str | None:
    """An error message if ``voice_id`` is certainly unknown to ``api``, else None."""
    known = cache.knows(voice_id, api)
    if known is None or known:
        return None
    if cache.may_refresh_on_miss(api):
        try:
            _, wait = refresh(cache, client, limiter, (api,))
        except akool_errors.AkoolError:
            return None  # cannot tell: let Akool decide
        if wait > 0 or cache.knows(voice_id, api) is not False:
            return None
    cached = cache.load(api)
    age = f"{cached.age:.0f} s ago" if cached else "recently"
    flag = SPEECH_APIS[api].voices_flag
    return (
        f"unknown voice_id {voice_id!r}: it is not in Akool's {api} voice list (refreshed "
        f"{age}); `akool-audio voices{flag}` lists the voices"
    )


def options_problem(cache: VoiceCache, request: AudioRequest) -> tuple[str, str] | None:
    """(field, message) for the first v4 option the voice's model does not support, when the
    voice cache knows the model; else None (Akool remains the judge)."""
    return SPEECH_APIS[request.api].options_problem(
        request, lambda voice_id: cache.model_of(voice_id, request.api)
    )


def request_problem(
    cache: VoiceCache, client: AkoolClient, limiter: RateLimiter, request: AudioRequest
) -> tuple[str, str] | None:
    """(field, message) when the voice cache proves the request cannot work: an unknown
    ``voice_id`` for the job's API, or a v4 option its voice's model lacks."""
    if not request.voice_id:
        return None
    problem = check_voice(cache, client, limiter, request.voice_id, request.api)
    if problem:
        return "voice_id", problem
    return options_problem(cache, request)
