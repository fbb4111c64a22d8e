"""Where our workers may send requests: http(s) only, and no private, loopback or link-local
address unless its host is allowlisted (``ALLOW_PRIVATE_HOSTS``; the sandbox on loopback needs
it). Checked on every hop of a redirect, after DNS resolution."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from worker.netaddr import is_public


class UnsafeURL(ValueError):
    """Raised when a URL points somewhere our workers must not go."""


class UnresolvedHost(UnsafeURL):
    """Raised when the URL's host cannot be resolved (perhaps only for now)."""


def check_url(url: str, allow_hosts: Collection[str] = ()) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeURL(f"only http and https URLs are allowed, got {parts.scheme or 'none'!r}")
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        raise UnsafeURL("URL has an invalid port") from None
    if not host:
        raise UnsafeURL("URL has no host")
    if host in allow_hosts:
        return
    try:
        infos = socket.getaddrinfo(
            host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        # DNS can fail for a moment: not a verdict on the URL, so callers may retry.
        raise UnresolvedHost(f"cannot resolve host {host!r}: {exc}") from None
    except UnicodeError as exc:
        raise UnsafeURL(f"host {host!r} is not a valid name: {exc}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0])
        if not is_public(ip):
            raise UnsafeURL(
                f"host {host!r} resolves to a private/loopback/link-local address ({ip}); "
                "add it to ALLOW_PRIVATE_HOSTS to allow it"
            )
