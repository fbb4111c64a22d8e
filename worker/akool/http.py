"""One HTTP exchange with Akool: a pooled session, timeouts, and every failure mapped to the tree.

``AkoolHTTP.request`` sends once (it never retries: the client decides what is safe to repeat)
and returns the JSON envelope when ``code == 1000``. Akool's body ``code`` is the source of
truth whatever the HTTP status; a non-2xx answer without an envelope (a gateway's HTML page)
is an ``HTTPStatusError`` with the page summarised, not dumped.
"""

from __future__ import annotations

import functools
import html
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Concatenate, ParamSpec

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

import worker.akool.errors as errors
from worker.akool.models import parse_int

__all__ = ["AkoolHTTP", "new_session", "summarize_body"]

log = logging.getLogger(__name__)

POOL_SIZE = 32
SUCCESS = 1000
_SUMMARY_CHARS = 200
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)

#: Told how every exchange ended: ``(path, outcome)``, the outcome being Akool's code ("1000",
#: "1005") or the error's class name. worker/fleet/counters.py counts Akool calls here (akool
#: imports nothing of the fleet: README, "Layout").
observers: list[Callable[[str, str], None]] = []
P = ParamSpec("P")


def new_session(pool_size: int = POOL_SIZE, hosts: int = 4) -> requests.Session:
    """A session with a pool of ``pool_size`` connections per host, for up to ``hosts`` hosts
    at once, and no hidden urllib3 retries."""
    session = requests.Session()
    # total=0: a dropped POST must surface, never be silently re-sent by urllib3.
    adapter = HTTPAdapter(
        pool_connections=hosts, pool_maxsize=pool_size, max_retries=Retry(total=0, read=False)
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def summarize_body(text: str, content_type: str = "") -> str:
    """A one-line summary of a body for an error message: an HTML page's title, or its start."""
    if "html" in content_type.lower() or text.lstrip()[:1] == "<":
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", text)
        text = html.unescape(text)
    text = " ".join(text.split())
    if not text:
        return "empty body"
    return text if len(text) <= _SUMMARY_CHARS else text[:_SUMMARY_CHARS] + "..."


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _observed(
    send: Callable[Concatenate[AkoolHTTP, str, str, P], dict[str, Any]],
) -> Callable[Concatenate[AkoolHTTP, str, str, P], dict[str, Any]]:
    @functools.wraps(send)
    def request(
        self: AkoolHTTP, method: str, path: str, /, *args: P.args, **kwargs: P.kwargs
    ) -> dict[str, Any]:
        try:
            envelope = send(self, method, path, *args, **kwargs)
        except errors.AkoolError as exc:
            outcome = type(exc).__name__ if exc.code is None else str(exc.code)
            for observe in observers:
                observe(path, outcome)
            raise
        for observe in observers:
            observe(path, str(SUCCESS))
        return envelope

    return request


class AkoolHTTP:
    """Sends single requests to ``base_url`` with a (connect, read) timeout on each."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._owns_session = session is None
        self.session = session if session is not None else new_session()
        # The environment's proxies (NO_PROXY too) and CA bundle for the one host we call, read
        # once: requests would read them again on every request (netrc included), about 5 % of
        # a poll's CPU (bench/pollcost.py). A session passed in keeps its own settings.
        self._env = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        if self._owns_session:
            self.session.trust_env = False

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    @_observed
    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
    ) -> dict[str, Any]:
        """Send once; return the envelope (``code == 1000``) or raise an ``AkoolError``."""
        endpoint = f"{method} {path}"
        secrets = tuple(secrets)
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                headers={"Accept": "application/json", **(headers or {})},
                params=params,
                json=body,
                timeout=self.timeout,
                allow_redirects=False,
                proxies=self._env["proxies"],
                verify=self._env["verify"],
            )
            # .content reads the whole body now, inside the same try (a read can time out here).
            content = response.content
        except requests.exceptions.RequestException as exc:
            raise self._transport_error(exc, endpoint, secrets) from None
        log.debug(
            "akool %s -> HTTP %d in %.3fs",
            endpoint,
            response.status_code,
            time.monotonic() - started,
        )
        return self._envelope(response, content, endpoint, secrets)

    @staticmethod
    def _transport_error(
        exc: requests.exceptions.RequestException, endpoint: str, secrets: tuple[str, ...]
    ) -> errors.AkoolError:
        # MaxRetryError wraps the real cause (refused, reset, timeout): name that, not the wrapper.
        cause: Any = exc.args[0] if exc.args else exc
        cause = getattr(cause, "reason", cause)
        detail = _scrub(f"{type(cause).__name__}: {cause}", secrets)[:_SUMMARY_CHARS]
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return errors.ConnectTimeout(f"connect timed out ({detail})", endpoint=endpoint)
        if isinstance(exc, requests.exceptions.ReadTimeout) or (
            isinstance(exc, requests.exceptions.ConnectionError)
            and exc.args
            and isinstance(exc.args[0], ReadTimeoutError)
        ):
            return errors.ReadTimeout(f"read timed out ({detail})", endpoint=endpoint)
        if isinstance(
            exc,
            requests.exceptions.ConnectionError
            | requests.exceptions.ChunkedEncodingError
            | requests.exceptions.ContentDecodingError,
        ):
            return errors.ConnectionFailed(f"connection failed ({detail})", endpoint=endpoint)
        if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.MissingSchema):
            return errors.ConfigurationError(f"bad Akool URL ({detail})", endpoint=endpoint)
        return errors.TransportError(f"request failed ({detail})", endpoint=endpoint)

    @staticmethod
    def _envelope(
        response: requests.Response, content: bytes, endpoint: str, secrets: tuple[str, ...]
    ) -> dict[str, Any]:
        status = response.status_code
        retry_after = _retry_after(response)
        try:
            payload: Any = response.json()
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, deep nesting
            payload = None
        code = parse_int(payload.get("code")) if isinstance(payload, dict) else None
        if code is not None and code != SUCCESS:
            assert isinstance(payload, dict)
            msg = payload.get("msg")
            msg = _scrub(msg if isinstance(msg, str) else "", secrets)[:_SUMMARY_CHARS]
            raise errors.from_code(
                code,
                msg or f"Akool error {code}",
                endpoint=endpoint,
                http_status=status,
                retry_after=retry_after,
            )
        if not 200 <= status < 300:
            summary = summarize_body(
                content.decode("utf-8", "replace"), response.headers.get("Content-Type", "")
            )
            raise errors.HTTPStatusError(
                status,
                f"HTTP {status} {response.reason or ''}: {_scrub(summary, secrets)}".replace(
                    " :", ":"
                ),
                endpoint=endpoint,
                retry_after=retry_after,
            )
        if code is None:
            if payload is None:
                summary = summarize_body(
                    content.decode("utf-8", "replace"), response.headers.get("Content-Type", "")
                )
                what = f"not JSON: {_scrub(summary, secrets)}"
            else:
                what = "JSON without an integer code (not an {code, msg, data} envelope)"
            raise errors.BadResponse(f"answer is {what}", endpoint=endpoint, http_status=status)
        assert isinstance(payload, dict)
        return payload
