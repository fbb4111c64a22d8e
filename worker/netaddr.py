"""Which addresses are public: one answer for the URL checks of requests (before anything is
sent) and for the resolved addresses of every outbound connection."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Collection

from config.settings import allow_entry

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Hosts that inet_aton would read as an IPv4 address: 127.1, 0x7f.0.0.1, 2130706433, 0177.0.0.1.
_NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?")


def normal_host(host: str) -> str:
    """A host as compared with an allowlist: no brackets, no trailing dot, lower case."""
    return host.strip("[]").rstrip(".").lower()


def literal_ip(host: str) -> IPAddress | None:
    """The address a host names literally, in any form the resolver accepts; None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_HOST.fullmatch(host) is None:
            return None
        try:  # a shorthand IPv4 form the resolver would accept
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return unmapped(ip)


def unmapped(ip: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052 NAT64, RFC 8215).
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to: mapped, 6to4, Teredo (the client) or NAT64."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _routable(ip: IPAddress) -> bool:
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address, and for an IPv6 address that embeds an
    IPv4 one only when that is too: never private, loopback, link-local, shared
    (100.64.0.0/10), reserved, unspecified or multicast."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return _routable(inner)
    return _routable(ip)


def is_loopback_host(host: str) -> bool:
    host = normal_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = literal_ip(host)
    return ip is not None and ip.is_loopback


def _entries(allow_hosts: Collection[str]) -> list[tuple[str, int | None]]:
    out = []
    for entry in allow_hosts:
        try:
            host, port = allow_entry(entry)
        except ValueError:
            continue  # Settings refuses it at start; a caller's own list: it allows nothing
        out.append((normal_host(host), port))
    return out


def allows_host(host: str, port: int, allow_hosts: Collection[str]) -> bool:
    """True when ``ALLOW_PRIVATE_HOSTS`` (``allow_hosts``) names ``host`` for ``port``: an entry
    ``host`` (every port) or ``host:port`` (that port only)."""
    wanted = normal_host(host)
    return any(h == wanted and p in (None, port) for h, p in _entries(allow_hosts))


def allowed_addresses(port: int, allow_hosts: Collection[str]) -> set[IPAddress]:
    """The addresses entries allow on ``port``; only an address written in its usual form
    counts (``127.1`` allows nothing)."""
    out: set[IPAddress] = set()
    for host, p in _entries(allow_hosts):
        ip = literal_ip(host)
        if ip is not None and normal_host(str(ip)) == host and p in (None, port):
            out.add(ip)
    return out
