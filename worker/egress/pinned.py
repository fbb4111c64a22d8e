"""Requests that connect only to the addresses worker/egress/netguard.py checked.

``requests`` resolves a URL's host again when it connects; between the check and that second
lookup a name can change its answer (DNS rebinding: public to the check, 127.0.0.1 to the
connection). Here the request's connection pool is keyed by the checked address instead of the
name, so the only lookup is the check's. The URL, the ``Host`` header, TLS's SNI and the
certificate's verification all keep the name: only where the socket connects changes.

:func:`request` sends one request this way (never a redirect: callers check each hop and send
it again). :func:`egress_session` is the pooled session for downloads and notifications; any
other session works too, through a shared adapter of this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

from worker.egress.netguard import Checked

_CHECKED = "_akool_checked"  # the Checked a prepared request was built from
_ADDRESS = "_akool_address"  # the address this attempt connects to


class PinnedAdapter(HTTPAdapter):
    """An adapter that sends a request only to its checked addresses, in the resolver's
    order; the next one is tried when a connection cannot be made (nothing was sent yet).
    A request that did not come through :func:`request` is refused."""

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        checked: Checked | None = getattr(request, _CHECKED, None)
        if checked is None:
            raise requests.exceptions.InvalidURL(
                "refusing a request whose address was not checked (worker/egress/netguard.py)",
                request=request,
            )
        request.headers["Host"] = checked.netloc
        kwargs["proxies"] = {}  # a proxy would resolve the name again, itself
        last: requests.ConnectionError | None = None
        for address in checked.addresses:
            setattr(request, _ADDRESS, address)
            try:
                return super().send(request, *args, **kwargs)
            except requests.ConnectionError as exc:
                if not _not_connected(exc):
                    raise
                last = exc
        assert last is not None  # Checked always has an address
        raise last

    def build_connection_pool_key_attributes(
        self, request: Any, verify: Any, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        checked: Checked = getattr(request, _CHECKED)
        host_params["host"] = getattr(request, _ADDRESS)
        if checked.scheme == "https":
            # SNI and the certificate's name check use the URL's host, not the address.
            pool_kwargs["server_hostname"] = checked.host  # type: ignore[typeddict-unknown-key]
        return host_params, pool_kwargs


def _not_connected(exc: requests.ConnectionError) -> bool:
    """True when no connection was made (so nothing was sent): another address may serve."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, NewConnectionError)


def _adapter(hosts: int = 8, pool_size: int = 32) -> PinnedAdapter:
    # total=0: a dropped POST must surface, never be silently re-sent by urllib3.
    return PinnedAdapter(
        pool_connections=hosts, pool_maxsize=pool_size, max_retries=Retry(total=0, read=False)
    )


def egress_session(hosts: int = 8, pool_size: int = 32) -> requests.Session:
    """A session whose requests connect only to checked addresses, pooled per address."""
    session = requests.Session()
    adapter = _adapter(hosts, pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_shared: dict[int, PinnedAdapter] = {}
_shared_lock = threading.Lock()


def _shared_adapter() -> PinnedAdapter:
    """The adapter for a session that has none of ours (one per process: pools never cross
    a fork)."""
    pid = os.getpid()
    with _shared_lock:
        adapter = _shared.get(pid)
        if adapter is None:
            _shared.clear()
            adapter = _shared[pid] = _adapter()
        return adapter


def request(
    session: requests.Session,
    method: str,
    checked: Checked,
    *,
    timeout: float | tuple[float, float],
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    stream: bool = False,
) -> requests.Response:
    """Send ``method checked.url`` to the checked addresses only; redirects are not followed.
    The session's headers and trust settings (``verify``, ``REQUESTS_CA_BUNDLE``) apply; its
    proxies do not (a proxy would resolve the name itself)."""
    prepared = session.prepare_request(
        requests.Request(method, checked.url, data=data, headers=dict(headers or {}))
    )
    setattr(prepared, _CHECKED, checked)
    # The session's own trust settings win; by default REQUESTS_CA_BUNDLE or certifi's CAs.
    verify = None if session.verify is True else session.verify
    settings = session.merge_environment_settings(prepared.url, {}, stream, verify, None)
    adapter = session.get_adapter(checked.url)
    if not isinstance(adapter, PinnedAdapter):
        adapter = _shared_adapter()
    response = adapter.send(
        prepared,
        stream=stream,
        timeout=timeout,
        verify=settings["verify"],
        cert=settings["cert"],
    )
    if not stream:
        _ = response.content  # read it all, as Session.send does, so the connection is freed
    return response
