"""The one error tree of the Akool client.

::

    AkoolError
    ├── ConfigurationError          missing/invalid credentials or settings      never retryable
    ├── ValidationError (ValueError) a bad argument, raised before any request   never retryable
    ├── TransportError              the network failed                           retryable
    │   ├── ConnectTimeout          no connection in time (nothing was sent)
    │   ├── ConnectionFailed        refused, reset or dropped (maybe sent)
    │   └── ReadTimeout             no answer in time (the server may have acted)
    ├── HTTPStatusError             a non-2xx answer without an Akool envelope   5xx/429/408 only
    ├── BadResponse                 HTTP 200 but not JSON, not an envelope, bad record   retryable
    └── APIError                    envelope ``code`` != 1000 (see ``from_code``)
        ├── RateLimited      1005                     retryable
        ├── TryLater         1201, 1015               retryable
        ├── AuthError        1101, 1102, 1109
        ├── QuotaExceeded    1006, 1103, 1104, 1213, 1221
        ├── AccountBanned    1200
        ├── NotFound         1008, 1014
        └── InvalidParameter 1003

``retryable`` says whether the *same* request may succeed later. For create/clone a retryable
``ReadTimeout`` or ``ConnectionFailed`` still means the job may exist: the client never retries
those POSTs itself, the caller decides. Errors carry context (``code``, ``message``,
``http_status``, ``endpoint``) and never a credential: the transport scrubs them from messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "AccountBanned",
    "AkoolError",
    "AuthError",
    "BadResponse",
    "ConfigurationError",
    "ConnectTimeout",
    "ConnectionFailed",
    "HTTPStatusError",
    "InvalidParameter",
    "NotFound",
    "QuotaExceeded",
    "RateLimited",
    "ReadTimeout",
    "TransportError",
    "TryLater",
    "ValidationError",
    "from_code",
    "is_retryable",
]


class AkoolError(Exception):
    """Raised when a call to Akool cannot give a result (the base of every error here)."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.endpoint = endpoint
        # Seconds the server asked us to wait (Retry-After), when it said so.
        self.retry_after = retry_after

    def _context(self) -> list[tuple[str, Any]]:
        pairs = [
            ("code", self.code),
            ("http_status", self.http_status),
            ("endpoint", self.endpoint),
        ]
        return [(k, v) for k, v in pairs if v is not None]

    def __str__(self) -> str:
        ctx = ", ".join(f"{k}={v}" for k, v in self._context())
        return f"{self.message} ({ctx})" if ctx else self.message

    def __repr__(self) -> str:
        ctx = "".join(f", {k}={v!r}" for k, v in self._context())
        return f"{type(self).__name__}({self.message!r}{ctx})"


class ConfigurationError(AkoolError):
    """Raised when the client is built without usable credentials or settings."""


class ValidationError(AkoolError, ValueError):
    """Raised when an argument is invalid, before any request is sent; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.args = (field, message)  # so pickling (Celery) rebuilds it


class TransportError(AkoolError):
    """Raised when the network failed before a complete answer arrived."""

    retryable = True


class ConnectTimeout(TransportError):
    """Raised when no connection was made within the connect timeout (nothing was sent)."""


class ConnectionFailed(TransportError):
    """Raised when the connection was refused, reset or dropped; a POST may have been received."""


class ReadTimeout(TransportError):
    """Raised when no answer came within the read timeout; a POST may have been acted on."""


_RETRYABLE_HTTP = frozenset({408, 429})


class HTTPStatusError(AkoolError):
    """Raised when the answer is a non-2xx HTTP status with no Akool envelope in the body."""

    def __init__(
        self,
        http_status: int,
        message: str,
        *,
        endpoint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, http_status=http_status, endpoint=endpoint, retry_after=retry_after
        )
        self.args = (http_status, message)
        self.retryable = http_status >= 500 or http_status in _RETRYABLE_HTTP


class BadResponse(AkoolError):
    """Raised when a 2xx answer is not JSON, not an ``{code, msg, data}`` envelope, or malformed."""

    retryable = True


class APIError(AkoolError):
    """Raised when Akool answers with an envelope whose ``code`` is not 1000."""

    def __init__(
        self,
        code: int,
        msg: str,
        *,
        endpoint: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            msg, code=code, http_status=http_status, endpoint=endpoint, retry_after=retry_after
        )
        self.args = (code, msg)
        self.code: int = code
        self.msg = msg


class RateLimited(APIError):
    """Raised when Akool says the operation is too frequent (1005)."""

    retryable = True


class TryLater(APIError):
    """Raised when Akool says to try again later (1201 create audio error, 1015)."""

    retryable = True


class AuthError(APIError):
    """Raised when the credentials are refused (1101 invalid/expired token, 1102 empty, 1109)."""


class QuotaExceeded(APIError):
    """Raised when credits, payment or subscription stop the call (1006, 1103, 1104, 1213, 1221)."""


class AccountBanned(APIError):
    """Raised when the account is blocked (1200)."""


class NotFound(APIError):
    """Raised when the audio record or resource does not exist (1008, 1014)."""


class InvalidParameter(APIError):
    """Raised when Akool rejects a parameter (1003)."""


_BY_CODE: dict[int, type[APIError]] = {
    1005: RateLimited,
    1201: TryLater,
    1015: TryLater,
    1101: AuthError,
    1102: AuthError,
    1109: AuthError,
    1006: QuotaExceeded,
    1103: QuotaExceeded,
    1104: QuotaExceeded,
    1213: QuotaExceeded,
    1221: QuotaExceeded,
    1200: AccountBanned,
    1008: NotFound,
    1014: NotFound,
    1003: InvalidParameter,
}


def from_code(
    code: int,
    msg: str,
    *,
    endpoint: str | None = None,
    http_status: int | None = None,
    retry_after: float | None = None,
) -> APIError:
    """The ``APIError`` subclass for an envelope ``code`` (unknown codes: plain ``APIError``)."""
    cls = _BY_CODE.get(code, APIError)
    return cls(code, msg, endpoint=endpoint, http_status=http_status, retry_after=retry_after)


def is_retryable(exc: BaseException) -> bool:
    """True when repeating the same request may succeed (see each class's ``retryable``)."""
    return isinstance(exc, AkoolError) and exc.retryable
