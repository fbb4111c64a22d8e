"""The signed HTTP POST that tells a caller its job is final, and ``verify`` for receivers.
Delivery problems are raised as :class:`NotifyError` for the pipeline to record; they never
fail the job."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Collection, Mapping
from typing import Any

import requests

from worker.egress import pinned
from worker.egress.netguard import UnresolvedHost, UnsafeURL, check_url

SIGNATURE_HEADER = "X-Akool-Audio-Signature"
TIMESTAMP_HEADER = "X-Akool-Audio-Timestamp"


class NotifyError(Exception):
    """Raised when a notification could not be delivered; ``retryable``: may a retry help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over ``"{timestamp}.{body}"``, hex; sent as ``v1=<hex>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return mac.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """For receivers: check the signature and that the timestamp is within ``tolerance`` s.

    The headers are anyone's: False for anything that cannot be checked (a header missing, not
    text, not ASCII or too long; a body that is not bytes), never an exception."""
    ts = headers.get(TIMESTAMP_HEADER)
    sig = headers.get(SIGNATURE_HEADER)
    if not (isinstance(ts, str) and isinstance(sig, str) and isinstance(body, bytes | bytearray)):
        return False
    # isdigit() alone takes "²" and other digits int() refuses; 12 digits reach year 33658.
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        return False
    if not (sig.isascii() and sig.startswith("v1=")):
        return False
    if abs((now if now is not None else time.time()) - int(ts)) > tolerance:
        return False
    return hmac.compare_digest(sig[3:].encode(), signature(secret, ts, bytes(body)).encode())


def post(
    session: requests.Session,
    url: str,
    summary: dict[str, Any],
    secret: str | None,
    *,
    timeout: float,
    allow_hosts: Collection[str] = (),
) -> int:
    """POST the summary as JSON; returns the HTTP status of a 2xx answer, raises NotifyError."""
    try:
        checked = check_url(url, allow_hosts)
    except UnresolvedHost as exc:
        raise NotifyError(f"notify_url unreachable: {exc}", retryable=True) from None
    except UnsafeURL as exc:
        raise NotifyError(f"notify_url refused: {exc}", retryable=False) from None
    body = json.dumps(summary, separators=(",", ":"), sort_keys=True).encode()
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: ts,
        "User-Agent": "akool-audio-worker",
    }
    if secret:
        headers[SIGNATURE_HEADER] = "v1=" + signature(secret, ts, body)
    try:
        # To the addresses just checked (worker/egress/pinned.py); a redirect is not followed.
        resp = pinned.request(
            session, "POST", checked, data=body, headers=headers, timeout=(3.05, timeout)
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise NotifyError(f"notify_url unreachable: {type(exc).__name__}", retryable=True) from None
    resp.close()
    if 200 <= resp.status_code < 300:
        return resp.status_code
    retryable = resp.status_code >= 500 or resp.status_code in (408, 429)
    raise NotifyError(f"notify_url answered HTTP {resp.status_code}", retryable=retryable)
