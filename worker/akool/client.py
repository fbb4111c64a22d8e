"""``AkoolClient``: the Akool Audio API v3, validated, authenticated and honest about retries;
its ``v4`` attribute speaks VoiceLab (v4) with the same rules (worker/akool/v4client.py).

Safe calls (voice list, detail, getToken) are retried here up to ``get_retries`` times, only for
retryable errors, with ``worker.backoff.backoff``. create and clone are sent exactly once: a
second POST can create a second paid job, so any error is raised for the caller to judge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests

import worker.akool.errors as errors
import worker.akool.validation as validation
from worker.akool.auth import Credentials, MemoryTokenCache, TokenCache
from worker.akool.http import AkoolHTTP
from worker.akool.models import VOICE_SOURCES, AudioJob, Voice, parse_job, parse_voices
from worker.akool.v4client import VoiceLab
from worker.akool.v4options import plan_name
from worker.backoff import backoff
from worker.netaddr import is_loopback_host

__all__ = ["AkoolClient"]

log = logging.getLogger(__name__)

TOKEN_PATH = "/api/open/v3/getToken"
VOICES_PATH = "/api/open/v3/voice/list"
CREATE_PATH = "/api/open/v3/audio/create"
CLONE_PATH = "/api/open/v3/audio/clone"
DETAIL_PATH = "/api/open/v3/audio/infobymodelid"  # lowercase, as documented

RETRY_BASE = 0.25
RETRY_CAP = 2.0
TOKEN_EXPIRED = 1101

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


class AkoolClient:
    """A client for Akool's v3 audio endpoints.

    Give ``api_key`` (sent as ``x-api-key``, preferred) or ``client_id`` and ``client_secret``
    (a legacy Bearer token from getToken, kept in ``token_cache``). ``webhook_allow_hosts`` lets
    ``webhook_url``/``voice_url`` point at those private hosts; when ``base_url`` itself is on
    loopback (the sandbox), loopback URLs are allowed too.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 20.0,
        get_retries: int = 2,
        token_cache: TokenCache | None = None,
        session: requests.Session | None = None,
        max_words: int = validation.MAX_WORDS,
        sleep: Callable[[float], None] = time.sleep,
        webhook_allow_hosts: Collection[str] = (),
        plan: str = "pro",
    ) -> None:
        self._creds = Credentials.build(api_key, client_id, client_secret)
        parts = urlsplit(base_url) if isinstance(base_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise errors.ConfigurationError(
                f"AKOOL_BASE_URL must be an http(s) URL with a host, got {base_url!r}"
            )
        if connect_timeout <= 0 or read_timeout <= 0:
            raise errors.ConfigurationError("connect_timeout and read_timeout must be > 0")
        if get_retries < 0 or max_words < 1:
            raise errors.ConfigurationError("get_retries must be >= 0 and max_words >= 1")
        try:
            self.plan = plan_name(plan)  # VoiceLab's per-request character limit
        except ValueError as exc:
            raise errors.ConfigurationError(f"AKOOL_PLAN {exc}") from None
        self.base_url = base_url.rstrip("/")
        self.get_retries = get_retries
        self.max_words = max_words
        self.token_cache: TokenCache = (
            token_cache if token_cache is not None else MemoryTokenCache()
        )
        self._sleep = sleep
        self._token_lock = threading.Lock()
        allow = set(webhook_allow_hosts)
        if is_loopback_host(parts.hostname):
            allow.update(_LOOPBACK_NAMES)
        self._allow_hosts = frozenset(allow)
        self._http = AkoolHTTP(
            self.base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            session=session,
        )
        self.v4 = VoiceLab(self)

    def __repr__(self) -> str:
        return f"AkoolClient({self.base_url!r}, auth={self._creds.mode!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool (an injected session is left to its owner)."""
        self._http.close()

    # -- public calls ------------------------------------------------------------------------

    def list_voices(self, source: int | None = None) -> list[Voice]:
        """Voices: ``source`` 3 = Akool's, 4 = user-made, None = both."""
        if source is not None and (isinstance(source, bool) or source not in VOICE_SOURCES):
            raise errors.ValidationError("source", f"must be 3, 4 or None, got {source!r:.40}")
        params = None if source is None else {"from": source}
        envelope = self.call("GET", VOICES_PATH, params=params, safe=True)
        return parse_voices(envelope.get("data"), endpoint=f"GET {VOICES_PATH}")

    def create_audio(
        self,
        input_text: str,
        voice_id: str,
        rate: str = "100%",
        webhook_url: str | None = None,
    ) -> AudioJob:
        """Submit text-to-speech (sent once, never retried here). May already be COMPLETED."""
        body: dict[str, Any] = {
            "input_text": validation.validate_text(input_text, self.max_words),
            "voice_id": validation.validate_voice_id(voice_id),
            "rate": validation.validate_rate(rate),
        }
        self.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        return self.post_audio("create", body)

    def clone_audio(
        self,
        input_text: str,
        *,
        voice_url: str | None = None,
        voice_id: str | None = None,
        rate: str = "100%",
        webhook_url: str | None = None,
    ) -> AudioJob:
        """Speak ``input_text`` in the voice of ``voice_url`` (a sample) or ``voice_id`` (one only).

        Sent once, never retried here. May already be COMPLETED.
        """
        body: dict[str, Any] = {
            "input_text": validation.validate_text(input_text, self.max_words),
            "rate": validation.validate_rate(rate),
        }
        if (voice_url is None) == (voice_id is None):
            raise errors.ValidationError("voice_url", "give exactly one of voice_url or voice_id")
        if voice_id is not None:
            body["voice_id"] = validation.validate_voice_id(voice_id)
        self.add_url(body, "voice_url", "voice_url", voice_url)
        self.add_url(body, "webhookUrl", "webhook_url", webhook_url)
        return self.post_audio("clone", body)

    def get_audio(self, audio_model_id: str) -> AudioJob:
        """The current record of a create/clone job (``audio_model_id`` is its ``_id``)."""
        if not isinstance(audio_model_id, str) or not audio_model_id.strip():
            raise errors.ValidationError(
                "audio_model_id", f"must be a non-empty string, got {audio_model_id!r:.40}"
            )
        if len(audio_model_id) > 128 or not audio_model_id.isascii():
            raise errors.ValidationError(
                "audio_model_id", "must be at most 128 ASCII characters (an Akool _id)"
            )
        envelope = self.call(
            "GET", DETAIL_PATH, params={"audio_model_id": audio_model_id}, safe=True
        )
        return parse_job(envelope.get("data"), endpoint=f"GET {DETAIL_PATH}")

    def get_token(self) -> str:
        """The legacy Bearer token: from ``token_cache``, else fetched from getToken and cached."""
        cached = self.token_cache.get()
        if cached:
            return cached
        if not self._creds.can_fetch_token:
            raise errors.ConfigurationError(
                "getToken needs AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET"
            )
        with self._token_lock:  # one fetch per process when many threads miss at once
            cached = self.token_cache.get()
            if cached:
                return cached
            body = {"clientId": self._creds.client_id, "clientSecret": self._creds.client_secret}
            envelope = self._retrying(
                lambda: self._http.request(
                    "POST", TOKEN_PATH, body=body, secrets=self._creds.secrets()
                ),
                safe=True,
            )
            token = envelope.get("token")
            if not isinstance(token, str) or not token:
                raise errors.BadResponse(
                    "getToken answered code 1000 without a token", endpoint=f"POST {TOKEN_PATH}"
                )
            self.token_cache.set(token)
            log.info("fetched a new Akool token")
            return token

    # -- internals ---------------------------------------------------------------------------

    def add_url(self, body: dict[str, Any], key: str, field: str, url: str | None) -> None:
        """Put ``url`` in ``body[key]`` once it is a URL we may send (``field`` names it)."""
        if url is not None:
            body[key] = validation.validate_http_url(field, url, allow_hosts=self._allow_hosts)

    def post_audio(self, kind: str, body: Mapping[str, Any]) -> AudioJob:
        """POST a create (``kind`` "create") or clone body as it is (sent once): for a body
        made of a request validated already (worker/akool/v3api.py); ``create_audio`` and
        ``clone_audio`` validate their arguments first."""
        path = CREATE_PATH if kind == "create" else CLONE_PATH
        envelope = self.call("POST", path, body=body, safe=False)
        return parse_job(envelope.get("data"), endpoint=f"POST {path}")

    def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        safe: bool,
    ) -> dict[str, Any]:
        """One authenticated call; a ``safe`` one is retried within ``get_retries``."""
        return self._retrying(lambda: self._authed(method, path, params, body), safe=safe)

    def _retrying(self, send: Callable[[], dict[str, Any]], *, safe: bool) -> dict[str, Any]:
        attempts = 1 + (self.get_retries if safe else 0)
        for attempt in range(attempts):
            try:
                return send()
            except errors.AkoolError as exc:
                if attempt + 1 >= attempts or not exc.retryable:
                    raise
                delay = backoff(attempt, base=RETRY_BASE, cap=RETRY_CAP)
                if exc.retry_after is not None:
                    if exc.retry_after > RETRY_CAP:
                        raise  # a long wait belongs to the task layer, not a blocked worker
                    delay = max(delay, exc.retry_after)
                log.warning("retrying in %.2fs after %r", delay, exc)
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authed(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if self._creds.api_key is not None:
            return self._send(method, path, params, body, {"x-api-key": self._creds.api_key})
        token = self.get_token()
        try:
            return self._send(method, path, params, body, {"Authorization": f"Bearer {token}"})
        except errors.AuthError as exc:
            if exc.code != TOKEN_EXPIRED:
                raise
            # 1101 rejects the request before any work, so repeating even a POST is safe.
            log.info("Akool token rejected (1101): fetching a new one and repeating once")
            self.token_cache.invalidate(token)
            token = self.get_token()
            return self._send(method, path, params, body, {"Authorization": f"Bearer {token}"})

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Mapping[str, Any] | None,
        headers: dict[str, str],
    ) -> dict[str, Any]:
        secrets = (*self._creds.secrets(), *(v.removeprefix("Bearer ") for v in headers.values()))
        return self._http.request(
            method, path, headers=headers, params=params, body=body, secrets=secrets
        )
