"""The public error code of a failed Akool call: Akool's own code for an API error
(``"1003"``), else ours for the kind of failure (``ReadTimeout``, ``BadResponse``, ...), which
failures leave a POST's outcome unknown, and the reason given when Akool fails the audio."""

from __future__ import annotations

from worker.akool import errors as akool_errors
from worker.jobs import ErrorCode

# The public code of an Akool failure that carries no API code of its own.
_AKOOL_CODES: dict[type[akool_errors.AkoolError], ErrorCode] = {
    akool_errors.ConnectTimeout: ErrorCode.CONNECT_TIMEOUT,
    akool_errors.ConnectionFailed: ErrorCode.CONNECTION_FAILED,
    akool_errors.ReadTimeout: ErrorCode.READ_TIMEOUT,
    akool_errors.TransportError: ErrorCode.TRANSPORT_ERROR,
    akool_errors.HTTPStatusError: ErrorCode.HTTP_STATUS,
    akool_errors.BadResponse: ErrorCode.BAD_RESPONSE,
    akool_errors.ConfigurationError: ErrorCode.CONFIGURATION,
    akool_errors.ValidationError: ErrorCode.VALIDATION,
}


def error_code(exc: akool_errors.AkoolError) -> str:
    """Akool's own code for an API error (``"1003"``), else ours for the kind of failure."""
    if exc.code is not None:
        return str(exc.code)
    for cls in type(exc).__mro__:
        if cls in _AKOOL_CODES:
            return _AKOOL_CODES[cls]
    return ErrorCode.TRANSPORT_ERROR


# Errors after which Akool may have created the job (or the voice) even though we saw no answer:
# only a failure to connect, or a definite API error code, proves that nothing was created.
AMBIGUOUS = (
    akool_errors.ReadTimeout,
    akool_errors.ConnectionFailed,
    akool_errors.BadResponse,
    akool_errors.HTTPStatusError,
)


def failed_status(akool_id: str) -> str:
    """The reason a job fails with when Akool reports status 4 for its audio."""
    return f"Akool reported status 4 (failed) for audio {akool_id}"
