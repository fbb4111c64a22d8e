"""Where our workers may send requests: http(s) only, and no private, loopback, link-local,
shared (100.64.0.0/10), reserved or multicast address, nor an IPv6 address embedding one (6to4,
Teredo, NAT64: worker/netaddr.py), unless it is allowlisted (``ALLOW_PRIVATE_HOSTS``; the
sandbox on loopback needs it). Checked on every hop of a redirect, after DNS resolution.

The name is resolved once, here, and the request then connects to the addresses that were
checked and to no other (worker/egress/pinned.py): a name that answers a public address to the
check and 127.0.0.1 to the connection (DNS rebinding) cannot get through.

An entry of ``ALLOW_PRIVATE_HOSTS`` is a host name (any address it resolves to is allowed) or
an address (that address is allowed whatever name led to it; a URL could name it directly
anyway), either with ``:port`` (that port only: what the demo and the docs use) or bare (every
port of it, as before ports could be given)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.netaddr import IPAddress, allowed_addresses, allows_host, is_public, unmapped


class UnsafeURL(ValueError):
    """Raised when a URL points somewhere our workers must not go."""


class UnresolvedHost(UnsafeURL):
    """Raised when the URL's host cannot be resolved (perhaps only for now)."""


@dataclass(frozen=True)
class Checked:
    """A URL that passed the check, with the addresses its host resolved to, in the
    resolver's order: the only ones a request to it may connect to."""

    url: str
    scheme: str
    host: str  # as in the URL, without brackets: the TLS name (SNI, certificate) and Host
    port: int
    addresses: tuple[str, ...]

    @property
    def netloc(self) -> str:
        """``host[:port]`` as the ``Host`` header carries it (no user info)."""
        return urlsplit(self.url).netloc.rpartition("@")[2]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order, each once."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    seen: list[IPAddress] = []
    for info in infos:
        ip = unmapped(ipaddress.ip_address(info[4][0]))
        if ip not in seen:
            seen.append(ip)
    return seen


def check_url(url: str, allow_hosts: Collection[str] = ()) -> Checked:
    """The URL with the addresses a request may use; UnsafeURL (or UnresolvedHost, which a
    retry may mend) when it must not be requested."""
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
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolve(host, port)
    except socket.gaierror as exc:
        # DNS can fail for a moment: not a verdict on the URL, so callers may retry.
        raise UnresolvedHost(f"cannot resolve host {host!r}: {exc}") from None
    except UnicodeError as exc:
        raise UnsafeURL(f"host {host!r} is not a valid name: {exc}") from None
    if not addresses:
        raise UnresolvedHost(f"host {host!r} resolves to no address")
    if not allows_host(host, port, allow_hosts):
        allowed = allowed_addresses(port, allow_hosts)
        for ip in addresses:
            if not is_public(ip) and ip not in allowed:
                raise UnsafeURL(
                    f"host {host!r} resolves to a private/loopback/link-local address ({ip}); "
                    f"add {host}:{port} to ALLOW_PRIVATE_HOSTS to allow it"
                )
    return Checked(url, parts.scheme, host, port, tuple(str(ip) for ip in addresses))
