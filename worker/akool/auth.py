"""Credentials and the legacy-token cache.

``x-api-key`` is preferred; without it the client fetches a Bearer token from getToken and keeps
it in a ``TokenCache``. The pipeline shares one cache (in Redis) across the fleet, so
``invalidate(token)`` drops the cached token only if it is still that token: when many workers
see 1101 at once, the first refresher's new token is not thrown away by the others.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from worker.akool.errors import ConfigurationError

__all__ = ["Credentials", "MemoryTokenCache", "TokenCache"]


@runtime_checkable
class TokenCache(Protocol):
    """Where a legacy Bearer token is kept between calls (and, in Redis, between workers)."""

    def get(self) -> str | None: ...

    def set(self, token: str) -> None: ...

    def invalidate(self, token: str) -> None:
        """Forget the cached token, but only if it is still ``token``."""
        ...


class MemoryTokenCache:
    """A thread-safe ``TokenCache`` for one process."""

    def __init__(self) -> None:
        self._token: str | None = None
        self._lock = threading.Lock()

    def get(self) -> str | None:
        with self._lock:
            return self._token

    def set(self, token: str) -> None:
        with self._lock:
            self._token = token

    def invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def __repr__(self) -> str:
        return f"MemoryTokenCache(cached={self._token is not None})"


@dataclass(frozen=True)
class Credentials:
    """Which auth the client uses; secrets are kept out of ``repr``."""

    api_key: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, api_key: str | None, client_id: str | None, client_secret: str | None
    ) -> Credentials:
        """Credentials from the given values; ``ConfigurationError`` if none are usable."""
        creds = cls(api_key or None, client_id or None, client_secret or None)
        if creds.api_key is None and not creds.can_fetch_token:
            raise ConfigurationError(
                "missing Akool credentials: set AKOOL_API_KEY (preferred), "
                "or both AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET"
            )
        return creds

    @property
    def can_fetch_token(self) -> bool:
        return self.client_id is not None and self.client_secret is not None

    @property
    def mode(self) -> str:
        return "api_key" if self.api_key is not None else "token"

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in an error message or a log line."""
        return tuple(s for s in (self.api_key, self.client_secret) if s)
